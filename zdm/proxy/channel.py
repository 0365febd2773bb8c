"""The link between a proxy instance and one of its worker processes.

Theory of operation: a Unix ``SOCK_SEQPACKET`` socket pair keeps message boundaries, so
each message is one pickled tuple, and a client socket handed to a worker travels as
SCM_RIGHTS ancillary data on a message of its own; the receiver gets its own descriptor
for the same connection.  Both ends run on their event loop: reads as they arrive,
writes queued while the kernel buffer is full.  End of file means the other process is
gone: the channel reports it once and closes.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import pickle
import socket
from typing import Callable

log = logging.getLogger("zdm.proxy")

MAX_MESSAGE = 1 << 20

#: on_message(message, sock): ``sock`` is the socket that came with the message, or None
OnMessage = Callable[[tuple, "socket.socket | None"], None]


def pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


class Channel:
    def __init__(self, sock: socket.socket, on_message: OnMessage,
                 on_closed: Callable[[], None] | None = None) -> None:
        self.sock = sock
        self.on_message = on_message
        self.on_closed = on_closed
        self.closed = False
        self._out: collections.deque[tuple[bytes, socket.socket | None]] = collections.deque()
        self._writing = False
        self._loop = asyncio.get_running_loop()
        sock.setblocking(False)
        self._loop.add_reader(sock.fileno(), self._readable)

    def send(self, *message, sock: socket.socket | None = None) -> None:
        """Queue ``message``; with ``sock``, hand that socket over (and close it here once sent)."""
        if self.closed:
            if sock is not None:
                sock.close()
            return
        self._out.append((pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL), sock))
        if not self._writing:
            self._flush()

    def _flush(self) -> None:
        out = self._out
        while out:
            data, sock = out[0]
            try:
                if sock is None:
                    self.sock.send(data)
                else:
                    socket.send_fds(self.sock, [data], [sock.fileno()])
            except BlockingIOError:
                if not self._writing:
                    self._writing = True
                    self._loop.add_writer(self.sock.fileno(), self._flush)
                return
            except OSError:
                self._lost()
                return
            out.popleft()
            if sock is not None:
                sock.close()  # the receiver has its own descriptor now
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self.sock.fileno())

    def _readable(self) -> None:
        while not self.closed:
            try:
                data, fds, _, _ = socket.recv_fds(self.sock, MAX_MESSAGE, 1)
            except BlockingIOError:
                return
            except OSError:
                self._lost()
                return
            if not data:
                self._lost()
                return
            sock = socket.socket(fileno=fds[0]) if fds else None
            try:
                self.on_message(pickle.loads(data), sock)
            except Exception:  # noqa: BLE001 - one bad message must not stop the channel
                log.exception("worker channel: message not handled")

    def _lost(self) -> None:
        if self.closed:
            return
        self.close()
        if self.on_closed is not None:
            self.on_closed()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._loop.remove_reader(self.sock.fileno())
        if self._writing:
            self._loop.remove_writer(self.sock.fileno())
        for _, sock in self._out:
            if sock is not None:
                sock.close()
        self._out.clear()
        self.sock.close()
