"""Numbers of the CQL native protocol, v3 to v5.

Every value here is copied from the protocol specs (``native_protocol_v3.spec``,
``_v4.spec``, ``_v5.spec``); the section is cited next to each group.  Nothing in
this module does I/O or depends on another ``zdm`` module.
"""

from __future__ import annotations

from enum import IntEnum

SUPPORTED_VERSIONS = (3, 4, 5)
MIN_VERSION = SUPPORTED_VERSIONS[0]
MAX_VERSION = SUPPORTED_VERSIONS[-1]

# v5 spec section 2.4.1.5: "currently an envelope body is limited to 256MB".
MAX_FRAME_BYTES_DEFAULT = 256 * 1024 * 1024

# v5 spec section 2.4.1.1: the top bit of the version byte is the direction.
RESPONSE_BIT = 0x80
VERSION_MASK = 0x7F


class Opcode(IntEnum):
    """v4 spec section 2.4 / v5 spec section 2.4.1.4."""

    ERROR = 0x00
    STARTUP = 0x01
    READY = 0x02
    AUTHENTICATE = 0x03
    OPTIONS = 0x05
    SUPPORTED = 0x06
    QUERY = 0x07
    RESULT = 0x08
    PREPARE = 0x09
    EXECUTE = 0x0A
    REGISTER = 0x0B
    EVENT = 0x0C
    BATCH = 0x0D
    AUTH_CHALLENGE = 0x0E
    AUTH_RESPONSE = 0x0F
    AUTH_SUCCESS = 0x10


class ErrorCode(IntEnum):
    """v4 spec section 9 / v5 spec section 8."""

    SERVER_ERROR = 0x0000
    PROTOCOL_ERROR = 0x000A
    BAD_CREDENTIALS = 0x0100
    UNAVAILABLE = 0x1000
    OVERLOADED = 0x1001
    IS_BOOTSTRAPPING = 0x1002
    TRUNCATE_ERROR = 0x1003
    WRITE_TIMEOUT = 0x1100
    READ_TIMEOUT = 0x1200
    READ_FAILURE = 0x1300
    FUNCTION_FAILURE = 0x1400
    WRITE_FAILURE = 0x1500
    CDC_WRITE_FAILURE = 0x1600
    CAS_WRITE_UNKNOWN = 0x1700
    SYNTAX_ERROR = 0x2000
    UNAUTHORIZED = 0x2100
    INVALID = 0x2200
    CONFIG_ERROR = 0x2300
    ALREADY_EXISTS = 0x2400
    UNPREPARED = 0x2500


class ResultKind(IntEnum):
    """v5 spec section 4.2.5."""

    VOID = 0x0001
    ROWS = 0x0002
    SET_KEYSPACE = 0x0003
    PREPARED = 0x0004
    SCHEMA_CHANGE = 0x0005


class Consistency(IntEnum):
    """v5 spec section 3, [consistency]."""

    ANY = 0x0000
    ONE = 0x0001
    TWO = 0x0002
    THREE = 0x0003
    QUORUM = 0x0004
    ALL = 0x0005
    LOCAL_QUORUM = 0x0006
    EACH_QUORUM = 0x0007
    SERIAL = 0x0008
    LOCAL_SERIAL = 0x0009
    LOCAL_ONE = 0x000A


class BatchType(IntEnum):
    """v5 spec section 4.1.7, <type>."""

    LOGGED = 0
    UNLOGGED = 1
    COUNTER = 2


# Frame header flags (v4 spec section 2.2, v5 spec section 2.4.1.2).
COMPRESSION = 0x01
TRACING = 0x02
CUSTOM_PAYLOAD = 0x04
WARNING = 0x08
USE_BETA = 0x10

# Query parameter flags (v5 spec section 4.1.4).  v3/v4 send them as a [byte],
# v5 as an [int]; WITH_KEYSPACE and WITH_NOW_IN_SECONDS exist only in v5.
VALUES = 0x01
SKIP_METADATA = 0x02
PAGE_SIZE = 0x04
WITH_PAGING_STATE = 0x08
WITH_SERIAL_CONSISTENCY = 0x10
WITH_DEFAULT_TIMESTAMP = 0x20
WITH_NAMES_FOR_VALUES = 0x40
WITH_KEYSPACE = 0x80
WITH_NOW_IN_SECONDS = 0x100

# PREPARE flags (v5 spec section 4.1.5).
PREPARE_WITH_KEYSPACE = 0x01

# Rows metadata flags (v5 spec section 4.2.5.2).
GLOBAL_TABLES_SPEC = 0x0001
HAS_MORE_PAGES = 0x0002
NO_METADATA = 0x0004
METADATA_CHANGED = 0x0008

# v5 spec section 2.1: the uncompressed segment payload length is 17 bits.
MAX_SEGMENT_PAYLOAD = 128 * 1024 - 1
