"""What a migration keeps between commands, and where: :func:`open_store` and
:func:`open_checkpoints` pick the backend zdm.yaml names (``state_store``).

* The migration state (phase, routing, evidence, history, the proxies' records and the
  journal): :class:`~zdm.state.store.StateStore`, kept in ``state_dir``
  (:mod:`zdm.state.file_store`, one host) or in a keyspace on target
  (:mod:`zdm.state.cassandra_store`, proxies on several hosts).
* The per-range progress of a copy or a validation:
  :class:`~zdm.state.checkpoint.CheckpointStore`, beside the state
  (:mod:`zdm.state.checkpoint` files, :mod:`zdm.state.cassandra_checkpoint` tables).
* The rows the proxies recorded as divergent: :mod:`zdm.state.divergences`.

The two Cassandra backends reach target through one helper,
:class:`~zdm.state.keyspace.StateKeyspace` (the session, the tables, failures named). What
the state means (phases, evidence) is :mod:`zdm.phases`'; this package only keeps it.
"""

from __future__ import annotations

from zdm.config import Config
from zdm.state.cassandra_checkpoint import CassandraCheckpointStore
from zdm.state.cassandra_store import CassandraStateStore
from zdm.state.checkpoint import CheckpointStore, FileCheckpointStore, TableCheckpoint
from zdm.state.file_store import FileStateStore
from zdm.state.store import ProxyLag, StateStore

__all__ = ["CheckpointStore", "FileCheckpointStore", "FileStateStore", "ProxyLag", "StateStore",
           "TableCheckpoint", "open_checkpoints", "open_store"]


def open_store(config: Config) -> StateStore:
    """The store ``config`` names (``state_store``)."""
    if config.state_store == "cassandra":
        return CassandraStateStore(config)
    return FileStateStore(config.state_dir)


def open_checkpoints(config: Config, kind: str = "migrate") -> CheckpointStore:
    """The checkpoints of ``kind`` (``migrate``, ``catchup``, ``validate``) that go with
    ``config``'s state store: files in ``state_dir`` (``state_store: file``), or tables in
    ``state_keyspace`` on target (``cassandra``)."""
    if config.state_store == "cassandra":
        return CassandraCheckpointStore(config, kind)
    return FileCheckpointStore(config.state_dir, kind)
