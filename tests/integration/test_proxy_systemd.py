"""`zdm proxy start` as systemd runs it (deploy/systemd/zdm-proxy.service): READY=1 on
NOTIFY_SOCKET only once the port serves, STOPPING=1 when it drains, SIGHUP re-reading the live
settings (RELOADING=1, then READY=1), a clean stop whichever processes of the instance get
SIGTERM, and a proxy that serves with no writable and executable memory
(MemoryDenyWriteExecute=).  Each instance runs two worker processes, in a process group of its
own, against the sandbox."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from tests.support.net import free_port
from tests.support.rawcql import RawClient
from zdm.cql import messages as m
from zdm.cql.constants import ErrorCode, Opcode

#: a stop with no request in flight takes far less; systemd waits TimeoutStopSec=60
STOP_BOUND_S = 30.0


def write_config(path, zdm_config, port, **proxy):
    extra = "".join(f", {k}: {v}" for k, v in proxy.items())
    path.write_text(f"""
origin: {{port: {zdm_config.origin.port}}}
target: {{port: {zdm_config.target.port}}}
proxy: {{listen_port: {port}, metrics_port: {free_port()}, workers: 2{extra}}}
state_dir: state
""")
    return path


class Instance:
    """`zdm proxy start` in its own process group (as systemd and a shell job run it), its
    output in a file (read after it stops)."""

    def __init__(self, config, port, log_path, env=None, argv_prefix=()):
        self.port = port
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [*argv_prefix, sys.executable, "-m", "zdm.cli.main", "proxy", "start", "--config", str(config)],
            stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
            start_new_session=True)

    def accepts(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def wait_listening(self, timeout=90.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.accepts():
            assert self.proc.poll() is None, f"the proxy exited with {self.proc.returncode}:\n{self.log()}"
            assert time.monotonic() < deadline, f"the proxy did not listen:\n{self.log()}"
            time.sleep(0.2)

    def stop_within(self, bound: float) -> int:
        try:
            return self.proc.wait(bound)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the proxy did not stop within {bound} s:\n{self.log()}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def log(self) -> str:
        self._log.flush()
        with open(self.log_path) as f:
            return f.read()

    def close(self) -> None:
        self.kill()
        self._log.close()


@pytest.fixture()
def launch(tmp_path):
    started = []

    def start(config, port, **kwargs):
        instance = Instance(config, port, tmp_path / f"proxy{len(started)}.log", **kwargs)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.close()


@pytest.fixture()
def notify_socket():
    """A datagram socket bound where NOTIFY_SOCKET will point, as systemd's."""
    directory = tempfile.mkdtemp(prefix="zdm-notify-")
    path = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    yield path, sock
    sock.close()
    os.unlink(path)
    os.rmdir(directory)


def fields(datagram: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in datagram.decode().split("\n"))


def next_notification(sock, instance, timeout=90.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        sock.settimeout(0.5)
        try:
            return fields(sock.recv(4096))
        except socket.timeout:
            assert instance.proc.poll() is None, f"the proxy exited with {instance.proc.returncode}:\n{instance.log()}"
            assert time.monotonic() < deadline, f"no notification within {timeout} s:\n{instance.log()}"


def serves(port) -> bool:
    client = RawClient(port)
    try:
        return client.startup().opcode == Opcode.READY
    finally:
        client.sock.close()


def assert_clean_stop(instance, code):
    log = instance.log()
    assert code == 0, f"the proxy exited with {code}:\n{log}"
    for bad in ("exited unexpectedly", "starting it again", "Traceback"):
        assert bad not in log, f"{bad!r} in the proxy's log:\n{log}"


def test_ready_comes_once_the_port_serves_and_stopping_when_it_drains(tmp_path, zdm_config, launch,
                                                                     notify_socket):
    path, sock = notify_socket
    port = free_port()
    instance = launch(write_config(tmp_path / "zdm.yaml", zdm_config, port), port,
                      env={"NOTIFY_SOCKET": path})
    first_accepted = None
    sock.settimeout(0.2)
    deadline = time.monotonic() + 90
    while True:  # try the port between waits for the notification: when did it first accept?
        try:
            ready = fields(sock.recv(4096))
            break
        except socket.timeout:
            if first_accepted is None and instance.accepts():
                first_accepted = time.monotonic()
            assert instance.proc.poll() is None, f"the proxy exited:\n{instance.log()}"
            assert time.monotonic() < deadline, f"no READY=1 within 90 s:\n{instance.log()}"
    ready_at = time.monotonic()
    assert ready["READY"] == "1", ready
    assert serves(port), "READY=1 came before the port served"  # at the moment READY arrived
    assert f"127.0.0.1:{port}" in ready["STATUS"] and "2 worker processes" in ready["STATUS"]
    assert first_accepted is None or first_accepted <= ready_at
    client = RawClient(port)  # a client still connected when it stops
    assert client.startup().opcode == Opcode.READY

    instance.proc.send_signal(signal.SIGTERM)  # KillMode=mixed: the main process only
    stopping = next_notification(sock, instance, timeout=STOP_BOUND_S)
    assert stopping["STOPPING"] == "1" and "draining" in stopping["STATUS"]
    assert_clean_stop(instance, instance.stop_within(STOP_BOUND_S))
    assert "READY=1" not in repr(stopping)
    client.sock.close()


def test_sigterm_to_the_whole_process_group_stops_it_cleanly(tmp_path, zdm_config, launch):
    """systemd's KillMode=control-group, `kill -- -PGID` and Ctrl-C signal the instance and its
    workers at once: the instance drains its workers, none is taken for crashed and restarted."""
    port = free_port()
    instance = launch(write_config(tmp_path / "zdm.yaml", zdm_config, port), port)
    instance.wait_listening()
    clients = [RawClient(port), RawClient(port)]  # one on each worker
    for client in clients:
        assert client.startup().opcode == Opcode.READY
    # the instance must not react before its workers do (a busy machine): it is held stopped while
    # the signal reaches every process of the group, and goes on once they had time to act on it
    os.kill(instance.proc.pid, signal.SIGSTOP)
    started = time.monotonic()
    os.killpg(instance.proc.pid, signal.SIGTERM)
    time.sleep(3)
    os.kill(instance.proc.pid, signal.SIGCONT)
    code = instance.stop_within(STOP_BOUND_S)
    assert_clean_stop(instance, code)
    assert time.monotonic() - started < STOP_BOUND_S
    assert "shutting down" in instance.log()
    for client in clients:
        assert client.closed_by_peer()


def overloaded(port) -> bool:
    client = RawClient(port)
    try:
        answer = client.startup()
        return answer.opcode == Opcode.ERROR and m.decode_error(answer.body).code == ErrorCode.OVERLOADED
    except ConnectionError:
        return False
    finally:
        client.sock.close()


def test_sighup_applies_the_live_settings_and_names_those_that_need_a_restart(tmp_path, zdm_config, launch,
                                                                             notify_socket):
    path, sock = notify_socket
    port = free_port()
    config = write_config(tmp_path / "zdm.yaml", zdm_config, port)
    instance = launch(config, port, env={"NOTIFY_SOCKET": path})
    assert next_notification(sock, instance)["READY"] == "1"
    first = RawClient(port)
    assert first.startup().opcode == Opcode.READY
    assert not overloaded(port)

    text = config.read_text()
    config.write_text(text.replace("workers: 2", "workers: 2, log_level: debug, max_client_connections: 1, "
                                                 "request_timeout_s: 3"))
    instance.proc.send_signal(signal.SIGHUP)
    reloading = next_notification(sock, instance)
    assert reloading["RELOADING"] == "1" and int(reloading["MONOTONIC_USEC"]) > 0
    ready = next_notification(sock, instance)
    assert ready["READY"] == "1", ready
    assert overloaded(port)  # one client connected, the new limit is one
    log = instance.log()
    assert "proxy.log_level info -> debug" in log and "proxy.max_client_connections 1000 -> 1" in log, log
    assert "proxy.request_timeout_s" in log and "restart" in log, log
    # each worker process logs at the new level
    deadline = time.monotonic() + 10
    while not ("DEBUG" in instance.log() and "[w0]" in instance.log() and "[w1]" in instance.log()):
        assert time.monotonic() < deadline, f"the workers did not log at debug:\n{instance.log()}"
        time.sleep(0.2)

    config.write_text("origin: {port: [}")  # broken: the proxy keeps its settings and says why
    instance.proc.send_signal(signal.SIGHUP)
    assert next_notification(sock, instance)["RELOADING"] == "1"
    ready = next_notification(sock, instance)
    assert ready["READY"] == "1" and "not reloaded" in ready["STATUS"], ready
    assert overloaded(port)
    first.sock.close()
    instance.proc.send_signal(signal.SIGTERM)
    assert_clean_stop(instance, instance.stop_within(STOP_BOUND_S))


MDWE_LAUNCHER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1
if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
    sys.exit(f"prctl(PR_SET_MDWE): errno {ctypes.get_errno()}")
assert libc.prctl(PR_GET_MDWE, 0, 0, 0, 0) == PR_MDWE_REFUSE_EXEC_GAIN
os.execv(sys.argv[1], sys.argv[1:])
"""


def _mdwe_supported() -> bool:
    probe = subprocess.run([sys.executable, "-c", MDWE_LAUNCHER, "/bin/true"], capture_output=True)
    return probe.returncode == 0


def test_the_proxy_serves_with_no_memory_both_writable_and_executable(tmp_path, zdm_config, launch):
    """MemoryDenyWriteExecute=yes in the unit: the kernel's own switch for it (PR_SET_MDWE,
    Linux 6.3+, kept across exec and by the worker processes) refuses any mapping that is both
    writable and executable; the instance and its workers must serve under it."""
    if not _mdwe_supported():
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+)")
    port = free_port()
    instance = launch(write_config(tmp_path / "zdm.yaml", zdm_config, port), port,
                      argv_prefix=(sys.executable, "-c", MDWE_LAUNCHER))
    instance.wait_listening()
    for _ in range(2):  # one on each worker
        client = RawClient(port)
        assert client.startup().opcode == Opcode.READY
        rows = client.query("SELECT release_version FROM system.local")
        assert rows.opcode == Opcode.RESULT
        client.sock.close()
    instance.proc.send_signal(signal.SIGTERM)
    assert_clean_stop(instance, instance.stop_within(STOP_BOUND_S))
