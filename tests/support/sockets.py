"""Reading from the audit relay's sockets in tests."""

from __future__ import annotations

import socket


def recv_exactly(conn: socket.socket, n: int) -> bytes:
    """``n`` bytes, or fewer if the other side closed the connection first."""
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data
