"""Sans-I/O codec of the CQL native protocol, v3 to v5.

No socket or asyncio here: readers take bytes and return frames or ask for
more; writers return bytes.  Modules: ``constants``, ``errors``, ``buffer``,
``primitives``, ``frame``, ``segment`` (v5 outer framing), ``compression``
(LZ4 and Snappy frame bodies, LZ4 segments), ``messages`` (the bodies routing
needs), ``types`` (CQL types and values), ``classify`` (statement kind and
target).
"""
