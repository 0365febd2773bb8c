"""sd_notify: the datagrams reach a real AF_UNIX socket bound here, by path and in the abstract
namespace, exactly as systemd reads them; without NOTIFY_SOCKET nothing is sent."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
import uuid

import pytest

from zdm.proxy.sd_notify import Notifier, address


@pytest.fixture()
def path_socket():
    """A datagram socket bound to a path, as systemd binds /run/systemd/notify."""
    directory = tempfile.mkdtemp(prefix="zdm-notify-")  # short: a socket path has 108 bytes at most
    path = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield path, sock
    sock.close()
    os.unlink(path)
    os.rmdir(directory)


@pytest.fixture()
def abstract_socket():
    name = f"zdm-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(5)
    yield "@" + name, sock
    sock.close()


def fields(datagram: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in datagram.decode().split("\n"))


@pytest.mark.parametrize("which", ["path_socket", "abstract_socket"], ids=["path", "abstract"])
def test_ready_and_stopping_arrive_as_one_datagram_each(request, which):
    where, sock = request.getfixturevalue(which)
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": where})
    assert notifier.enabled
    assert notifier.ready("listening on 127.0.0.1:14002")
    assert sock.recv(4096) == b"READY=1\nSTATUS=listening on 127.0.0.1:14002"
    assert notifier.stopping("draining")
    assert fields(sock.recv(4096)) == {"STOPPING": "1", "STATUS": "draining"}


def test_reloading_carries_the_monotonic_clock_in_microseconds(path_socket):
    where, sock = path_socket
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert Notifier.from_environ({"NOTIFY_SOCKET": where}).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    got = fields(sock.recv(4096))
    assert got["RELOADING"] == "1"
    assert before <= int(got["MONOTONIC_USEC"]) <= after


def test_a_newline_in_a_status_cannot_add_a_field(path_socket):
    where, sock = path_socket
    Notifier.from_environ({"NOTIFY_SOCKET": where}).status("bad\nREADY=1")
    assert fields(sock.recv(4096)) == {"STATUS": "bad READY=1"}


@pytest.mark.parametrize("environ", [{}, {"NOTIFY_SOCKET": ""}], ids=["unset", "empty"])
def test_without_notify_socket_nothing_is_sent(environ):
    notifier = Notifier.from_environ(environ)
    assert not notifier.enabled
    assert not notifier.ready("listening")


def test_an_address_of_another_kind_is_refused_with_a_log_line(caplog):
    with caplog.at_level(logging.WARNING, logger="zdm.proxy"):
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not notifier.enabled
    assert "NOTIFY_SOCKET=vsock:2:1234" in caplog.text


def test_a_socket_that_is_gone_is_logged_once_and_does_not_raise(caplog, tmp_path):
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    with caplog.at_level(logging.WARNING, logger="zdm.proxy"):
        assert not notifier.ready("listening")
        assert not notifier.stopping("draining")
    assert caplog.text.count("cannot notify systemd") == 1


@pytest.mark.parametrize("value, expected", [
    ("/run/systemd/notify", "/run/systemd/notify"),
    ("@/org/freedesktop/systemd1/notify/123", b"\0/org/freedesktop/systemd1/notify/123"),
    ("relative/path", None),
    (None, None),
], ids=["path", "abstract", "relative", "unset"])
def test_address(value, expected):
    assert address(value) == expected
