"""How zdm's long-running processes (the proxy instance and its workers) write their logs.

Theory of operation: one :func:`configure` for every process, so an instance and its workers
write the same format: ``text`` (one readable line) or ``json`` (one object per line, for a
log shipper).  A line about one client connection carries the connection's id and peer
(``extra={"conn": ..., "peer": ...}``, see :func:`client`); a worker's lines carry its name.
Secrets never reach a log line: nothing here formats credentials, and callers log peers and
keys, not passwords.
"""

from __future__ import annotations

import json
import logging
import sys

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")


def client(conn: str, peer: str) -> dict[str, str]:
    """The ``extra`` of a log line about one client connection."""
    return {"conn": conn, "peer": peer}


class _Context(logging.Filter):
    """Fills the fields the formats name, so every record has them."""

    def __init__(self, worker: str | None) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.worker
        conn = getattr(record, "conn", None)
        record.client = f" [conn {conn} peer {getattr(record, 'peer', '?')}]" if conn else ""
        record.where = f"[{self.worker}]" if self.worker else ""
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
               "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        for name in ("worker", "conn", "peer"):
            value = getattr(record, name, None)
            if value:
                out[name] = value
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out)


def configure(level: str = "info", fmt: str = "text", *, worker: str | None = None) -> None:
    """Send this process's log lines to stderr at ``level``, as ``fmt``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_Context(worker))
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s%(where)s: %(message)s%(client)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
