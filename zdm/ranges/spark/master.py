"""Whether the Spark engine can run at all, checked before anything starts: pyspark installed,
a master named (by ``--master`` or spark-submit) and in a form Spark knows, and, for a
standalone or Kubernetes master, one that accepts connections.

Nothing here imports pyspark at the top: zdm runs without it unless ``--engine spark`` asks.
"""

from __future__ import annotations

import os
import re
import socket
from urllib.parse import urlsplit

from zdm.errors import ConfigError, ZdmError

INSTALL_HINT = "install it: pip install 'zdm[spark]' (pyspark 4.1, which runs on Java 17 or 21)"
MASTER_FORMS = ("local[N] (this machine, N cores), spark://HOST:PORT (a standalone cluster), "
                "yarn, or k8s://https://HOST:PORT")

_LOCAL = re.compile(r"local(\[(\*|\d+)(,\d+)?\])?")


def require_pyspark() -> None:
    try:
        import pyspark  # noqa: F401  # lazy: pyspark is an optional dependency
    except ImportError:
        raise ZdmError("--engine spark needs pyspark, which is not installed", hint=INSTALL_HINT) from None


def is_local(master: str) -> bool:
    """Whether ``master`` runs Spark inside this process's JVM, on this machine."""
    return _LOCAL.fullmatch(master) is not None


def check_master(master: str) -> None:
    """Refuse what is no Spark master URL, and Spark Connect (it has no RDDs to run ranges as)."""
    if master.startswith("sc://"):
        raise ConfigError(f"{master} is a Spark Connect address; the Spark engine needs a classic "
                          "master (it runs each range as a task of an RDD, which Spark Connect lacks)",
                          path="--master", hint=f"give the cluster's master URL: {MASTER_FORMS}")
    if not (is_local(master) or master == "yarn" or master.startswith("local-cluster[")
            or re.fullmatch(r"[a-z][a-z0-9+.-]*://\S+", master)):
        raise ConfigError(f"{master!r} is not a Spark master URL", path="--master",
                          hint=f"use {MASTER_FORMS}")


def check(run) -> None:
    """The Spark engine's part of :func:`zdm.ranges.engine.check`: starts nothing."""
    require_pyspark()
    if run.master:
        check_master(run.master)
    elif not under_spark_submit():
        raise no_master()


def no_master() -> ConfigError:
    return ConfigError("--engine spark needs a Spark master", path="--master",
                       hint=f"add --master URL, e.g. --master local[4] to run Spark on this machine; "
                            f"{MASTER_FORMS}; or run zdm under spark-submit --master URL")


def under_spark_submit() -> bool:
    """Whether spark-submit (or pyspark's shell) runs this process: it names the master."""
    return bool(os.environ.get("PYSPARK_GATEWAY_PORT"))


def probe_master(master: str, timeout_s: float = 5.0) -> None:
    """Refuse a standalone or Kubernetes master that does not accept connections (Spark itself
    would retry registering for a minute, then give up without telling the caller)."""
    if master.startswith("spark://"):
        endpoints = []
        for hostport in master[len("spark://"):].split(","):
            host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "7077")
            endpoints.append((host.strip("[]"), port))
    elif master.startswith("k8s://"):
        url = urlsplit(master[len("k8s://"):] if "://" in master[len("k8s://"):]
                       else "https://" + master[len("k8s://"):])
        endpoints = [(url.hostname or "", str(url.port or (443 if url.scheme == "https" else 80)))]
    else:
        return
    errors = []
    for host, port in endpoints:
        try:
            socket.create_connection((host, int(port)), timeout=timeout_s).close()
            return
        except (OSError, ValueError) as exc:
            errors.append(f"{host}:{port}: {getattr(exc, 'strerror', None) or exc}")
    raise ZdmError(f"cannot reach the Spark master {master} ({'; '.join(errors)})",
                   hint="check the URL (a standalone master listens on 7077 by default), that the "
                        "master runs, and that this machine can reach it; --master local[N] runs "
                        "Spark on this machine instead")
