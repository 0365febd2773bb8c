"""Small network helpers for tests."""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def driver_cluster(port: int, protocol_version: int | None = None, **kwargs):
    """A DataStax driver Cluster pointed at a proxy on loopback, as an application would make it."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(),
                               request_timeout=kwargs.pop("request_timeout", 20))
    if protocol_version:
        kwargs["protocol_version"] = protocol_version
    return Cluster(["127.0.0.1"], port=port, execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                   connect_timeout=10, **kwargs)


def start_proxy_process(config_path, port: int, timeout: float = 30.0, *, args=(), env=None, cwd=None,
                        host: str = "127.0.0.1"):
    """`zdm proxy start --config ...` as its own process, as an operator runs it; returns once
    it accepts connections (or fails with its output).  ``config_path`` None: no --config."""
    import subprocess
    import sys
    import time

    config = ["--config", str(config_path)] if config_path is not None else []
    proc = subprocess.Popen([sys.executable, "-m", "zdm.cli.main", "proxy", "start", *config, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"the proxy exited with {proc.returncode}:\n{proc.stdout.read()}")
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("the proxy did not start listening") from None
            time.sleep(0.2)


def stop_proxy_process(proc) -> str:
    """SIGTERM a proxy of :func:`start_proxy_process` (SIGKILL if it has not exited within
    30 s); its output."""
    import subprocess

    proc.terminate()
    try:
        output, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
    return output


def answers_plaintext_startup(port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> bool:
    """Whether ``host:port`` answers a plaintext CQL STARTUP with a CQL frame (READY,
    AUTHENTICATE or ERROR): what a port that encrypts everything must never do.  The one
    plaintext answer a TLS port may give is the refusal that tells the client to use TLS (an
    ERROR saying so, then the connection closed): it carries nothing but that."""
    from zdm.cql import messages as m
    from zdm.cql.constants import Opcode
    from zdm.cql.frame import encode_frame

    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(encode_frame(4, Opcode.STARTUP, m.encode_startup({"CQL_VERSION": "3.0.0"}),
                                      stream=1))
            data, closed = b"", False
            try:
                while True:  # a refusal closes the connection after its answer
                    chunk = sock.recv(65536)
                    if not chunk:
                        closed = True
                        break
                    data += chunk
                    if len(data) >= 9 and data[4] != Opcode.ERROR:
                        break
            except socket.timeout:
                pass  # it kept the connection open: whatever it answered counts
    except OSError:
        return False
    if not (len(data) >= 9 and data[0] in (0x83, 0x84, 0x85) and data[4] in (
            Opcode.READY, Opcode.AUTHENTICATE, Opcode.ERROR)):
        return False
    if data[4] == Opcode.ERROR:
        length = int.from_bytes(data[5:9], "big")
        if closed and len(data) == 9 + length and "requires TLS" in m.decode_error(data[9:]).message:
            return False  # told to use TLS, and closed
    return True


def answers_tls_startup(port: int, context, host: str = "127.0.0.1", timeout: float = 5.0) -> bool:
    """The same STARTUP over TLS (``context``): a CQL port that encrypts answers this one."""
    from zdm.cql import messages as m
    from zdm.cql.constants import Opcode
    from zdm.cql.frame import encode_frame

    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host) as sock:
                sock.sendall(encode_frame(4, Opcode.STARTUP,
                                          m.encode_startup({"CQL_VERSION": "3.0.0"}), stream=1))
                head = sock.recv(9)
    except OSError:
        return False
    return len(head) >= 5 and head[0] in (0x83, 0x84, 0x85) and head[4] in (
        Opcode.READY, Opcode.AUTHENTICATE, Opcode.ERROR)


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process ``pid`` (and its children) listens on, from /proc (Linux)."""
    import os
    from pathlib import Path

    pids, seen = [pid], set()
    while pids:
        p = pids.pop()
        if p in seen:
            continue
        seen.add(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                pids += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    inodes = set()
    for p in seen:
        try:
            for fd in os.listdir(f"/proc/{p}/fd"):
                try:
                    target = os.readlink(f"/proc/{p}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            pass
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports
