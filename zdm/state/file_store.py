"""The ``file`` state store (the default): one JSON file, a lock, a journal and per-proxy
record files in ``state_dir``, for a migration whose proxies all run on one host.

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
  polling :meth:`FileStateStore.state_stamp` (a cheap ``stat``) before calling ``load``.
- A proxy record is only changed by merging fields under that record's own lock
  (:meth:`FileStateStore.update_proxy`), so a heartbeat and an
  acknowledgement written at the same time never undo each other.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from zdm.clock import iso, utcnow
from zdm.errors import ZdmError
from zdm.fsutil import atomic_write
from zdm.phases.errors import ConcurrentModification, StateCorrupt, UnknownProxy
from zdm.phases.state import MigrationState, StateFormatError, decode, encode
from zdm.state.divergences import DivergenceLog
from zdm.state.store import StateStore, check_proxy_name


class FileStateStore(StateStore):
    kind = "file"

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
    def _exclusive(self) -> Iterator[None]:
        """Every read-modify-write holds the exclusive lock."""
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

    def _commit(self, new: MigrationState, *, expected_revision: int,
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

    def update_proxy(self, name: str, /, **fields: Any) -> dict[str, Any]:
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

    def _proxy_file(self, name: str) -> Path:
        check_proxy_name(name)
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

    # -- divergences and the rest ---------------------------------------------------------
    def divergences(self) -> DivergenceLog:
        return DivergenceLog(self.state_dir)

    def describe(self) -> str:
        return f"state_dir {self.state_dir}"
