"""The audit relay in tests: reading its sockets, a relay on a thread, a scripted fake."""

from __future__ import annotations

import contextlib
import os
import socket
import threading

from authserver import audit_relay


def recv_exactly(conn: socket.socket, n: int) -> bytes:
    """``n`` bytes, or fewer if the other side closed the connection first."""
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


@contextlib.contextmanager
def relay_thread(engine, path: str, linger: float = 0.0):
    """A relay on a thread at a path of our choosing (a restart reuses the path, as the
    supervisor of `authserver serve` does), with ``linger`` its group commit's wait."""
    relay = audit_relay.Relay(engine, path, linger=linger)
    thread = threading.Thread(target=relay.serve, name="test-relay", daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        relay.stop()
        thread.join(timeout=10)
        assert not thread.is_alive()
        os.unlink(path)


class FakeRelay:
    """A relay we script: ``answer(connection_index, frame_index)`` gives the byte to send,
    None to stay silent (``send`` may answer later), or "close" to close the connection
    without answering. ``frames`` and ``loads`` record what came (the load: the header's
    top byte)."""

    def __init__(self, path: str, answer):
        self.path, self._answer = path, answer
        self.frames: list[tuple[int, bytes]] = []  # (connection index, payload)
        self.loads: list[int] = []
        self.closed_by_client: set[int] = set()
        self._conns: list[socket.socket] = []
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(8)
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._conns.append(conn)
            t = threading.Thread(target=self._serve, args=(len(self._conns) - 1, conn),
                                 daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, index: int, conn: socket.socket) -> None:
        frame_index = 0
        with contextlib.suppress(OSError):
            while True:
                head = recv_exactly(conn, 4)
                if len(head) < 4:
                    self.closed_by_client.add(index)
                    return
                header = int.from_bytes(head, "big")
                self.frames.append((index, recv_exactly(conn, header & 0xFFFFFF)))
                self.loads.append(header >> 24)
                answer = self._answer(index, frame_index)
                frame_index += 1
                if answer == "close":
                    conn.shutdown(socket.SHUT_RDWR)
                    return
                if answer is not None:
                    conn.sendall(answer)

    def send(self, index: int, data: bytes) -> None:
        """Answer on connection ``index`` (one ``answer`` left silent)."""
        self._conns[index].sendall(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._listener.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        for t in self._threads:
            t.join(timeout=5)
