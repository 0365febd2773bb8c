"""Errors of the CQL codec.

A :class:`ProtocolError` is what the peer did wrong, carrying what the proxy
needs to answer it on the wire: the :class:`ErrorCode` (``code``), and when
known the stream id (``stream``) and protocol version (``version``) of the
offending frame.  They are plain attributes so a caller that knows more (the
stream of the frame whose body failed to decode) can fill them in.
"""

from __future__ import annotations

from zdm.cql.constants import SUPPORTED_VERSIONS, ErrorCode
from zdm.errors import ZdmError


class ProtocolError(ZdmError):
    """A peer sent bytes that violate the CQL native protocol."""

    def __init__(self, message: str, *, code: int = ErrorCode.PROTOCOL_ERROR,
                 stream: int | None = None, version: int | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.stream = stream
        self.version = version


class FrameTooLarge(ProtocolError):
    """A frame header declared a body longer than the configured limit."""


def unsupported_version_message(version: int, supported: tuple[int, ...] = SUPPORTED_VERSIONS) -> str:
    """Cassandra's exact wording (``ProtocolVersion.invalidVersionMessage``).

    Drivers match on it: the python driver downgrades when the message contains
    ``"unsupported protocol version"`` (``cassandra/connection.py``).
    """
    listed = ", ".join(f"{v}/v{v}" for v in supported)
    return (f"Invalid or unsupported protocol version ({version}); "
            f"supported versions are ({listed})")


class UnsupportedVersion(ProtocolError):
    """The first byte of a frame names a version we do not speak.

    ``version`` is the offending version number (direction bit stripped).  The
    proxy answers with a PROTOCOL_ERROR carrying :attr:`message` so that the
    driver retries with a lower version; see ``frame.encode_unsupported_version``.
    """

    def __init__(self, version: int, *, stream: int | None = None,
                 supported: tuple[int, ...] = SUPPORTED_VERSIONS) -> None:
        super().__init__(unsupported_version_message(version, supported), stream=stream,
                         version=version,
                         hint=f"the client must downgrade to protocol v{max(supported)} or lower")
