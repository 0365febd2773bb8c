"""Divergences: rows that may differ between origin and target, as the proxies saw them.

Theory of operation: a proxy records a row it knows may differ between the clusters -- a
lightweight transaction applied on one side only (``kind: "lwt"``), a write the secondary
cluster did not take (``kind: "secondary_write"``).  `zdm validate` re-checks the recorded
rows first and `--autocorrect` or `zdm repair` copies them from the cluster that holds the
truth (``source``, the primary when the write was made); resolving a record appends its id
to the resolved list.  The phase machine will not move reads or clients to target while
records are pending.

Layout under ``state_dir/divergences/``::

    <writer>.jsonl   append-only, one file per proxy worker, so no two processes share one
    resolved.jsonl   one {"id", "how", "at"} line per resolved record

A record: ``{"id", "kind", "keyspace", "table", "key", "source", "writetime", "at",
"proxy", "detail"}``, where ``key`` is :meth:`zdm.proxy.keys.RowKey.to_json` -- the row's
primary key columns, with ``partition_key``/``clustering_key`` when the proxy knew the
table's key -- (or None: the whole table) and ``writetime`` the write's timestamp in
microseconds (secondary writes).

Invariants: a record reported durable (the writer's ``done`` callback) has been written and
fsynced; records are group-committed, so a burst costs one fsync; a torn last line (a
crash mid-write) is skipped when reading, never taken for a record.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable

from zdm.clock import iso, utcnow
from zdm.cql.types import deserialize, parse_type

log = logging.getLogger("zdm.divergences")

Done = Callable[[BaseException | None], None]


def new_record(kind: str, keyspace: str | None, table: str | None, key: dict | None, *,
               source: str, proxy: str, writetime: int | None = None, detail: str = "") -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "kind": kind, "keyspace": keyspace, "table": table, "key": key,
            "source": source, "writetime": writetime, "at": iso(utcnow()), "proxy": proxy,
            "detail": detail}


class Divergences:
    """The records of one migration, wherever they are kept: what is pending and resolving it."""

    def records(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def resolved_ids(self) -> set[str]:
        raise NotImplementedError

    def resolve(self, ids: Iterable[str], how: str) -> int:
        """Mark records resolved (durably); returns how many."""
        raise NotImplementedError

    def pending(self) -> list[dict[str, Any]]:
        done = self.resolved_ids()
        return [r for r in self.records() if r.get("id") not in done]

    def summary(self) -> dict[str, dict[str, int]]:
        """``"ks.table"`` -> {kind: pending records}."""
        return _count(self.pending())

    def resolved_summary(self) -> dict[str, dict[str, int]]:
        """``"ks.table"`` -> {kind: resolved records}."""
        done = self.resolved_ids()
        return _count(r for r in self.records() if r.get("id") in done)


def _count(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter] = {}
    for r in records:
        counts.setdefault(f"{r.get('keyspace')}.{r.get('table')}", Counter())[r.get("kind")] += 1
    return {table: dict(c) for table, c in sorted(counts.items())}


class DivergenceLog(Divergences):
    """The records written on this host (``state_dir/divergences``); writers append with
    :meth:`writer`."""

    def __init__(self, state_dir: Path | str) -> None:
        self.directory = Path(state_dir) / "divergences"

    def writer(self, name: str) -> "DivergenceWriter":
        return DivergenceWriter(self.directory / f"{name}.jsonl")

    def records(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if not self.directory.is_dir():
            return out
        for path in sorted(self.directory.glob("*.jsonl")):
            if path.name != "resolved.jsonl":
                out.extend(_read_lines(path))
        return out

    def resolved_ids(self) -> set[str]:
        return {r["id"] for r in _read_lines(self.directory / "resolved.jsonl") if "id" in r}

    def resolve(self, ids: Iterable[str], how: str) -> int:
        lines = [json.dumps({"id": i, "how": how, "at": iso(utcnow())}) for i in ids]
        if lines:
            _append(self.directory / "resolved.jsonl", lines)
        return len(lines)


class DivergenceWriter:
    """Appends one process's records durably, on a thread of its own (never the caller's)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[tuple[dict, Done | None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"zdm-divergences-{path.stem}",
                                        daemon=True)
        self._thread.start()

    def append(self, record: dict[str, Any], done: Done | None = None) -> None:
        """Queue ``record``; ``done(None)`` once it is on disk, ``done(error)`` if it cannot be."""
        self._queue.put((record, done))

    def close(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch, stop = [], item is None
            if item is not None:
                batch.append(item)
            while not stop:  # group commit: everything queued meanwhile shares the fsync
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                else:
                    batch.append(item)
            if batch:
                error: BaseException | None = None
                try:
                    _append(self.path, [json.dumps(r) for r, _ in batch])
                except OSError as exc:
                    error = exc
                    log.error("cannot record %d divergence(s) in %s: %s", len(batch), self.path, exc)
                for _, done in batch:
                    if done is not None:
                        done(error)
            if stop:
                return


def _append(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, ("\n".join(lines) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:  # the new file's directory entry must survive a crash too
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _read_lines(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a torn last line: the write it belonged to was never reported durable
    return out


# -- a record's key, as people read it ------------------------------------------------------

def _as_record(key):
    """A key as records hold it: a dict, or a :class:`zdm.proxy.keys.RowKey` (its JSON)."""
    return key.to_json() if hasattr(key, "to_json") else key


def complete_partition(key) -> bool:
    """Does the key name one partition (or a few, with IN), rather than standing for the
    whole table?  Unknowable without the primary key: True when some column is pinned."""
    if key is None:
        return False
    key = _as_record(key)
    columns = key.get("columns") or {}
    partition = key.get("partition_key")
    return all(columns.get(c) for c in partition) if partition is not None else bool(columns)


def render_key(key) -> str:
    """``ks.t: k=1, c='x'`` for people (logs, samples, `zdm status`)."""
    if key is None:
        return "(key unknown)"
    key = _as_record(key)
    parts = []
    for name, values in key["columns"].items():
        shown = [_show(v) for v in values]
        parts.append(f"{name}={shown[0]}" if len(shown) == 1 else f"{name} IN ({', '.join(shown)})")
    where = f"{key['keyspace']}.{key['table']}" if key.get("keyspace") else key["table"]
    if not complete_partition(key):
        return f"{where} (whole table)"
    return f"{where}: {', '.join(parts)}"


def _show(value: dict[str, str]) -> str:
    if "cql" in value:
        return value["cql"]
    if "type" not in value:
        return "0x" + value["hex"]
    try:
        return repr(deserialize(parse_type(value["type"]), bytes.fromhex(value["hex"])))
    except Exception:  # noqa: BLE001 - a value we cannot decode is still shown
        return "0x" + value["hex"]
