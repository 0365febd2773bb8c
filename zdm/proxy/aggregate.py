"""Which response the client gets when a request went to both clusters.

zdm-proxy's rule: both succeed -> the primary's response; exactly one fails ->
that failure (a write missing on one side must not look like success); both
fail -> the primary's failure.  An outcome is the response frame, or any other
object (the proxy's ``Failure``) when a cluster gave no answer at all (timeout,
lost connection) and the proxy must synthesise an error for it.
"""

from __future__ import annotations

from zdm.cql.constants import Opcode
from zdm.cql.frame import Frame


def failed(outcome: object) -> bool:
    return not isinstance(outcome, Frame) or outcome.opcode == Opcode.ERROR


def choose(primary: object, secondary: object) -> object:
    """The outcome the client gets."""
    if failed(secondary) and not failed(primary):
        return secondary
    return primary
