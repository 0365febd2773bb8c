"""The token of a partition key, as Cassandra's Murmur3Partitioner computes it.

Theory of operation: Cassandra hashes a partition key with its own port of MurmurHash3
x64/128 (``org.apache.cassandra.utils.MurmurHash.hash3_x64_128``, seed 0) and keeps the
first of the two 64-bit halves as the token, a signed long.  Two details make it differ
from the reference MurmurHash3, and a token that differs routes to the wrong replica:

* the tail (the last ``len % 16`` bytes) is read byte by byte as Java *signed* bytes, so a
  byte >= 0x80 is sign-extended to 64 bits before it is shifted into place and XORed in
  (the reference reads them unsigned);
* ``Long.MIN_VALUE`` is the ring's minimum token, never a key's: it becomes
  ``Long.MAX_VALUE`` (``Murmur3Partitioner.getToken``).

Python integers are unbounded, so every step that Java does in 64-bit two's complement
is masked with :data:`_MASK`; the result is converted to a signed value once, at the end.

:func:`token` is on the request path of every EXECUTE whose partition the proxy routes:
it uses the DataStax Python driver's compiled MurmurHash3 (``cassandra.cmurmur3``, the same
function, some twenty times faster) when the driver was built with it, and
:func:`token_python` otherwise; the tests hold the two equal.
"""

from __future__ import annotations

import struct

MIN_TOKEN = -(1 << 63)
MAX_TOKEN = (1 << 63) - 1

_MASK = (1 << 64) - 1
_C1 = 0x87C37B91114253D5
_C2 = 0x4CF5AD432745937F
_BLOCKS = struct.Struct("<2Q")


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _MASK


def _fmix(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _MASK
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _MASK
    k ^= k >> 33
    return k


def token_python(key: bytes | bytearray | memoryview) -> int:
    """The Murmur3Partitioner token of a partition key (its serialized routing key):
    a signed 64-bit integer, never :data:`MIN_TOKEN`."""
    data = bytes(key)
    length = len(data)
    whole = length - length % 16
    h1 = h2 = 0
    for k1, k2 in _BLOCKS.iter_unpack(data[:whole]):
        k1 = _rotl((k1 * _C1) & _MASK, 31)
        h1 ^= (k1 * _C2) & _MASK
        h1 = (_rotl(h1, 27) + h2) & _MASK
        h1 = (h1 * 5 + 0x52DCE729) & _MASK
        k2 = _rotl((k2 * _C2) & _MASK, 33)
        h2 ^= (k2 * _C1) & _MASK
        h2 = (_rotl(h2, 31) + h1) & _MASK
        h2 = (h2 * 5 + 0x38495AB5) & _MASK
    tail = data[whole:]
    if tail:
        k1 = k2 = 0
        for i in range(len(tail) - 1, -1, -1):
            b = tail[i]
            signed = (b - 256 if b >= 0x80 else b) & _MASK  # Java's (long) of a signed byte
            if i >= 8:
                k2 ^= (signed << ((i - 8) * 8)) & _MASK
            else:
                k1 ^= (signed << (i * 8)) & _MASK
        if len(tail) > 8:
            k2 = _rotl((k2 * _C2) & _MASK, 33)
            h2 ^= (k2 * _C1) & _MASK
        k1 = _rotl((k1 * _C1) & _MASK, 31)
        h1 ^= (k1 * _C2) & _MASK
    h1 ^= length
    h2 ^= length
    h1 = (h1 + h2) & _MASK
    h2 = (h2 + h1) & _MASK
    h1 = _fmix(h1)
    h2 = _fmix(h2)
    h1 = (h1 + h2) & _MASK
    signed = h1 - (1 << 64) if h1 >> 63 else h1
    return MAX_TOKEN if signed == MIN_TOKEN else signed


try:
    from cassandra.cmurmur3 import murmur3 as _compiled
except ImportError:  # a driver built without its extensions
    token = token_python
else:
    def token(key: bytes | bytearray | memoryview) -> int:
        """The Murmur3Partitioner token of a partition key (:func:`token_python`, compiled)."""
        found = _compiled(bytes(key))
        return MAX_TOKEN if found == MIN_TOKEN else found
