"""What every command shares: the console, the --config option, and the one error handler.

Commands are thin: they parse arguments, call a plain function of zdm's core, and
render the result.  Every :class:`~zdm.errors.ZdmError` is caught here, in
:func:`command`, printed as "what went wrong / what to do", and turned into a
non-zero exit; ``zdm --debug`` re-raises it with its traceback instead.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated, Callable, TypeVar

import typer
from rich.console import Console

from zdm.config import DEFAULT_CONFIG_PATH, Config, load_config
from zdm.errors import ZdmError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

ConfigPath = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="ZDM_CONFIG", help="The migration's zdm.yaml.",
                 dir_okay=False),
]
DEFAULT_CONFIG = DEFAULT_CONFIG_PATH


class _Flags:
    debug = False


flags = _Flags()

F = TypeVar("F", bound=Callable)


def command(fn: F) -> F:
    """Wrap a command so a ZdmError becomes a clear message and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ZdmError as exc:
            if flags.debug or os.environ.get("ZDM_DEBUG"):
                raise
            report_error(exc)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def report_error(exc: ZdmError) -> None:
    from rich.markup import escape

    # the texts are plain: a hint's `pip install 'zdm[spark]'` is no markup tag
    err_console.print(f"[bold red]error:[/] {escape(exc.message)}", markup=True, soft_wrap=True,
                      emoji=False, highlight=False, style=None)
    if exc.hint:
        err_console.print(f"[bold]what to do:[/] {escape(exc.hint)}", soft_wrap=True)


def config_from(path: Path, *, missing_ok: bool = False) -> Config:
    return load_config(path, missing_ok=missing_ok)
