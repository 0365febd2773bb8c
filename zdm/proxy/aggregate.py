"""Which response the client gets when a request went to both clusters.

zdm-proxy's rule: both succeed -> the primary's response; exactly one fails ->
that failure (a write missing on one side must not look like success); both
fail -> the primary's failure.  An outcome is the response frame, or ``None``
when the cluster gave no answer (timeout, lost connection) and the proxy
must synthesise an error for it.
"""

from __future__ import annotations

from zdm.cql.constants import Opcode
from zdm.cql.frame import Frame


def failed(outcome: Frame | None) -> bool:
    return outcome is None or outcome.opcode == Opcode.ERROR


def choose(primary: Frame | None, secondary: Frame | None) -> tuple[Frame | None, bool]:
    """The outcome to return, and whether it is the primary's."""
    if failed(secondary) and not failed(primary):
        return secondary, False
    return primary, True
