"""Durable migration state: one JSON file, a lock, a journal, and per-proxy ack files.

Layout of ``state_dir``::

    state.json        the MigrationState (see state.py), replaced atomically
    state.lock        flock'ed exclusively for every read-modify-write
    journal.jsonl     one JSON line per change, appended after the state is written
    proxies/NAME.json one file per registered proxy: address, acknowledged routing, and
                      the health the proxy reports (heartbeat, connections, async reads)
    proxies/.NAME.lock flock'ed while that proxy's record is read-modified-written

Invariants:
- ``state.json`` is only ever replaced whole (temp file in the same directory, fsync,
  ``os.replace``, fsync of the directory): readers see the old or the new file.
- A write happens only under the lock and only if the revision on disk is the one that
  was read (compare-and-swap) and the new revision is exactly one more.
- A damaged state file raises :class:`StateCorrupt` and is never overwritten.
- Proxies write only their own ack file, never ``state.json``; they notice changes by
  polling :meth:`StateStore.state_stamp` (a cheap ``stat``) before calling ``load``.
- A proxy record is only changed by merging fields under that record's own lock
  (:meth:`StateStore.update_proxy`, :meth:`StateStore.ack_routing`), so a heartbeat and an
  acknowledgement written at the same time never undo each other.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Mapping

from zdm.errors import ZdmError
from zdm.fsutil import atomic_write
from zdm.phases.errors import ConcurrentModification, StateCorrupt, UnknownProxy
from zdm.phases.evidence import iso, parse_time, utcnow
from zdm.phases.state import MigrationState, StateFormatError, decode, encode

_PROXY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")  # e.g. "10.0.0.1:14002"


@dataclass(frozen=True)
class ProxyLag:
    """One registered proxy against the routing revision it should have applied."""

    name: str
    address: str
    acked_revision: int | None
    acked_at: datetime | None
    wanted_revision: int

    @property
    def lagging(self) -> bool:
        return self.acked_revision is None or self.acked_revision < self.wanted_revision


class Transaction:
    """The state as read under the lock; :meth:`commit` writes its successor."""

    def __init__(self, store: "StateStore", state: MigrationState) -> None:
        self.store = store
        self.state = state

    def commit(self, new: MigrationState, *, journal: Mapping[str, Any] | None = None) -> None:
        self.store._write_locked(new, expected_revision=self.state.revision, journal=journal)
        self.state = new


class StateStore:
    def __init__(self, state_dir: Path | str, *, lock_timeout: float = 30.0) -> None:
        self.state_dir = Path(state_dir)
        self.lock_timeout = lock_timeout

    @property
    def path(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def lock_path(self) -> Path:
        return self.state_dir / "state.lock"

    @property
    def journal_path(self) -> Path:
        return self.state_dir / "journal.jsonl"

    @property
    def proxies_dir(self) -> Path:
        return self.state_dir / "proxies"

    # -- reading ---------------------------------------------------------------------

    def load(self) -> MigrationState:
        """The stored state, or the initial phase-0 state when none was written yet."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return MigrationState()
        try:
            return decode(data)
        except StateFormatError as exc:
            raise StateCorrupt(self.path, str(exc), journal=self.journal_path) from None

    def state_stamp(self) -> tuple[int, int, int] | None:
        """``(inode, mtime_ns, size)`` of the state file; changes whenever it is replaced."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def read_journal(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Journal entries, oldest first (the last ``limit`` if given)."""
        try:
            lines = self.journal_path.read_text().splitlines()
        except FileNotFoundError:
            return []
        lines = lines[-limit:] if limit else lines
        return [json.loads(line) for line in lines if line.strip()]

    # -- writing ---------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Hold the exclusive lock for a read-modify-write; nothing is written unless
        :meth:`Transaction.commit` is called."""
        with self._locked():
            yield Transaction(self, self.load())

    def write(self, new: MigrationState, *, expected_revision: int,
              journal: Mapping[str, Any] | None = None) -> None:
        """Optimistic write: succeeds only if the stored revision is still ``expected_revision``."""
        with self._locked():
            self._write_locked(new, expected_revision=expected_revision, journal=journal)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as lock:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        raise ZdmError(f"migration state {self.state_dir} is locked by another "
                                       f"zdm command", hint="wait for it to finish, then retry")
                    time.sleep(0.02)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _write_locked(self, new: MigrationState, *, expected_revision: int,
                      journal: Mapping[str, Any] | None) -> None:
        found = self.load().revision  # raises StateCorrupt: a damaged file is never replaced
        if found != expected_revision:
            raise ConcurrentModification(expected_revision, found)
        if new.revision != expected_revision + 1:
            raise ValueError(f"new revision {new.revision} must follow {expected_revision}")
        atomic_write(self.path, encode(new))
        if journal is not None:
            with open(self.journal_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(journal, sort_keys=True, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())

    # -- proxies and routing acknowledgements ------------------------------------------

    def register_proxy(self, name: str, address: str) -> None:
        """(Re-)register a proxy; it has acknowledged nothing until :meth:`ack_routing`."""
        with self._proxy_locked(name):
            self._write_proxy(name, {"name": name, "address": address,
                                     "registered_at": iso(utcnow()),
                                     "acked_revision": None, "acked_at": None})

    def deregister_proxy(self, name: str) -> None:
        """Forget a proxy that is gone for good, so it no longer holds up routing changes."""
        self._proxy_file(name).unlink(missing_ok=True)

    def ack_routing(self, name: str, revision: int) -> None:
        """Called by a proxy once it routes by ``revision`` (``routing_status.revision``)."""
        self.update_proxy(name, acked_revision=int(revision), acked_at=iso(utcnow()))

    def update_proxy(self, name: str, /, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` (JSON values) into a registered proxy's record; returns the record.

        The proxy reports its health this way about once a second, e.g. ``address``,
        ``pid``, ``heartbeat_at`` (UTC ISO), ``origin_connected``, ``target_connected`` and
        ``async_reads`` (``{"requests", "errors", "mismatches", "since"}``).
        Raises :class:`UnknownProxy` if ``name`` is not registered (or was deregistered).
        """
        path = self._proxy_file(name)
        with self._proxy_locked(name):
            try:
                record = json.loads(path.read_bytes())
            except FileNotFoundError:
                raise UnknownProxy(name) from None
            except (OSError, ValueError):
                record = {"name": name, "acked_revision": None}  # damaged: start over, unacked
            record = {**record, **fields, "name": name}
            self._write_proxy(name, record)
        return record

    def proxy_records(self) -> dict[str, dict[str, Any]]:
        """Registered proxy name -> its record (as written by register/update/ack)."""
        return dict(sorted(self._proxies().items()))

    def routing_acks(self) -> dict[str, int | None]:
        """Registered proxy name -> last acknowledged routing revision (None: none yet)."""
        return {name: rec.get("acked_revision") for name, rec in self._proxies().items()}

    def wait_for_acks(self, revision: int, timeout: float, poll: float = 0.1) -> list[str]:
        """Wait until every registered proxy acknowledged ``revision``; return those lagging."""
        deadline = time.monotonic() + timeout
        while True:
            lagging = sorted(n for n, r in self.routing_acks().items()
                             if r is None or r < revision)
            if not lagging or time.monotonic() >= deadline:
                return lagging
            time.sleep(poll)

    def proxy_lag(self, state: MigrationState | None = None) -> list[ProxyLag]:
        """Every registered proxy with what it acknowledged versus the current routing."""
        wanted = (state or self.load()).routing_status.revision
        return [ProxyLag(name, rec.get("address", ""), rec.get("acked_revision"),
                         parse_time(rec["acked_at"]) if rec.get("acked_at") else None, wanted)
                for name, rec in sorted(self._proxies().items())]

    def _proxy_file(self, name: str) -> Path:
        if not _PROXY_NAME.match(name):
            raise ZdmError(f"invalid proxy name {name!r}",
                           hint="use letters, digits, '.', ':', '_' or '-'")
        return self.proxies_dir / f"{name}.json"

    @contextmanager
    def _proxy_locked(self, name: str) -> Iterator[None]:
        self._proxy_file(name)  # validates the name before it becomes a path
        self.proxies_dir.mkdir(parents=True, exist_ok=True)
        with open(self.proxies_dir / f".{name}.lock", "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # held for one small file write
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _write_proxy(self, name: str, record: dict[str, Any]) -> None:
        path = self._proxy_file(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(record, sort_keys=True).encode())

    def _proxies(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        if not self.proxies_dir.is_dir():
            return out
        for path in self.proxies_dir.glob("*.json"):
            try:
                out[path.stem] = json.loads(path.read_bytes())
            except (OSError, ValueError):
                # Unreadable ack file: keep the proxy registered but unacknowledged, so it
                # holds up routing changes rather than being silently ignored.
                out[path.stem] = {"name": path.stem, "acked_revision": None}
        return out
