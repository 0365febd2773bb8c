"""What a request to a cluster came back with, and which one the client gets.

An *outcome* is the cluster's response frame, or a :class:`Failure` when the cluster gave
no answer at all (timeout, lost connection) and the proxy must make an error frame of it.

zdm-proxy's rule for a request sent to both clusters: both succeed -> the primary's
response; exactly one fails -> that failure (a write missing on one side must not look
like success); both fail -> the primary's failure.
"""

from __future__ import annotations

from zdm.cql.constants import Opcode
from zdm.cql.frame import Frame


class Failure:
    """No answer from a cluster: the reason, to be turned into an error for the client."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def __repr__(self) -> str:
        return f"Failure({self.message!r})"


Outcome = Frame | Failure


def failed(outcome: Outcome) -> bool:
    return not isinstance(outcome, Frame) or outcome.opcode == Opcode.ERROR


def choose(primary: Outcome, secondary: Outcome) -> Outcome:
    """The outcome the client gets."""
    if failed(secondary) and not failed(primary):
        return secondary
    return primary
