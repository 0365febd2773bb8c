"""Writes one proxy instance's zdm.yaml: the chart's, plus who this instance is.

Theory of operation: every pod of the StatefulSet gets the same zdm.yaml from the ConfigMap,
but zdm needs, per instance, the addresses drivers are told (``proxy.instances``, the nodes
of system.peers) and which of them is its own (``proxy.advertise_host``). Those addresses are
IPs (system.peers holds ``inet`` values), and a pod's IP changes when it is replaced, so each
instance has a Service of its own whose ClusterIP stays as long as the release: this script,
the init container, resolves those Services' names (INSTANCE_HOSTS, one per instance in
order, retrying while DNS does not know a Service yet), takes its own by the pod's ordinal
(POD_NAME, ``<statefulset>-<ordinal>``), and adds the logins' usernames (ORIGIN_USERNAME,
TARGET_USERNAME: empty or absent means no login; the passwords stay in the environment,
read through ``password_env``). It needs python3 and PyYAML (one of zdm's dependencies).

    render-zdm-yaml.py CHART_ZDM_YAML OUTPUT
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import time

import yaml

RESOLVE_FOR_S = float(os.environ.get("RESOLVE_TIMEOUT_S", "120"))


def fail(message: str) -> None:
    print(f"render-zdm-yaml: {message}", file=sys.stderr)
    sys.exit(2)


def resolve(host: str, deadline: float) -> str:
    """``host``'s address (itself when it is one), waiting for DNS until ``deadline``."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    while True:
        try:
            return socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0]
        except socket.gaierror as exc:
            if time.monotonic() > deadline:
                fail(f"cannot resolve {host} ({exc}): is the Service of that proxy instance there?")
            time.sleep(2)


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        fail("usage: render-zdm-yaml.py CHART_ZDM_YAML OUTPUT")
    source, output = argv[1], argv[2]
    with open(source, encoding="utf-8") as f:
        config = yaml.safe_load(f) or {}
    pod = os.environ.get("POD_NAME", "")
    _, _, ordinal = pod.rpartition("-")
    if not ordinal.isdigit():
        fail(f"POD_NAME {pod!r} is not <statefulset>-<ordinal>")
    hosts = [h for h in os.environ.get("INSTANCE_HOSTS", "").split(",") if h]
    if int(ordinal) >= len(hosts):
        fail(f"{pod} is instance {ordinal}, but INSTANCE_HOSTS names {len(hosts)}")
    deadline = time.monotonic() + RESOLVE_FOR_S
    addresses = [resolve(h, deadline) for h in hosts]
    proxy = config.setdefault("proxy", {})
    port = proxy.get("listen_port", 14002)
    proxy["advertise_host"] = addresses[int(ordinal)]
    proxy["instances"] = [f"{a}:{port}" for a in addresses]
    for cluster in ("origin", "target"):
        username = os.environ.get(f"{cluster.upper()}_USERNAME", "").strip()
        if username:
            section = config.setdefault(cluster, {})
            section["username"] = username
            section["password_env"] = f"{cluster.upper()}_PASSWORD"
    with open(output, "w", encoding="utf-8") as f:
        f.write(f"# written by the chart's init container for {pod}; the chart's own is in its ConfigMap\n")
        yaml.safe_dump(config, f, sort_keys=False)
    print(f"{pod}: proxy.advertise_host {proxy['advertise_host']}, "
          f"proxy.instances {', '.join(proxy['instances'])}")


if __name__ == "__main__":
    main(sys.argv)
