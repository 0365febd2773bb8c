"""The one error root of zdm.

Every failure a user can act on is a :class:`ZdmError`: it says what went wrong
(``message``) and what to do about it (``hint``).  The CLI catches it in one
place, prints both and exits non-zero; ``--debug`` re-raises it instead.
"""

from __future__ import annotations


class ZdmError(Exception):
    """Base of every error zdm reports to its user."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(ZdmError):
    """The configuration file or a CLI argument is wrong."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None,
                 hint: str | None = None) -> None:
        where = path or "<config>"
        if key:
            where = f"{where}: {key}"
        super().__init__(f"{where}: {message}", hint=hint)
        self.path = path
        self.key = key
        #: what is wrong, without the file and key (to restate it for another name)
        self.reason = message


class SandboxError(ZdmError):
    """A local sandbox node could not be set up, started or stopped."""
