"""Audit events that accompany no other write (a client-credentials token), committed by the
audit relay (audit_relay.py) before the request is answered.

``audit.record()`` writes an event in the caller's transaction, which is right when the event
belongs to a state change. A client-credentials issuance changes nothing but the audit log, so
a whole ORM transaction per token was most of that request's cost. Here the request thread
hands its event to the relay over its own Unix-socket connection and waits for the answer:
the relay commits everything that arrived meanwhile, from all workers, in one statement.
Nothing is dropped and nothing is answered before its event is durable; if the database
refuses, or the relay cannot be reached or does not answer within WAIT_SECONDS, the request
fails (AuditUnavailable: 503) and is never retried here (the event may have committed).

Under ``authserver serve`` the relay is a process of its own (its socket in
``Settings.audit_relay_socket``); otherwise each process starts one on a thread.
"""

from __future__ import annotations

import os
import select
import socket
import threading
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from . import audit, audit_relay

if TYPE_CHECKING:
    from .web.in_flight import InFlight

WAIT_SECONDS = 30.0  # a request never waits longer than this for its event's commit


class AuditUnavailable(RuntimeError):
    """The event could not be committed: the request must fail, not answer."""


class AuditWriter:
    def __init__(self, engine: Engine, relay_socket: str = "", linger: float = 0.0,
                 in_flight: InFlight | None = None):
        """``linger``: the group commit wait of this process's own relay (no socket);
        ``in_flight``: this process's requests in progress, reported with each event."""
        self._engine = engine
        self._linger = linger
        self._in_flight = in_flight
        self._relay_socket = relay_socket
        self._local = threading.local()  # each request thread's connection to the relay
        self._own: audit_relay.ThreadRelay | None = None
        self._own_pid: int | None = None
        self._starting = threading.Lock()

    def record(self, session: Session | None, type: str, **fields) -> None:
        """``audit.record`` when ``session`` has a transaction open (the event then commits
        with it; on SQLite that transaction holds the write lock, so waiting for the relay
        would wait on ourselves), else a group-committed write, done when this returns."""
        if session is not None and session.in_transaction():
            audit.record(session, type, **fields)
        else:
            self.write(audit.event_row(type, **fields))

    def write(self, event: dict) -> None:
        """Commit one event (``audit.event_row``) and return, or raise AuditUnavailable."""
        data = audit_relay.frame(event, self._in_flight.load() if self._in_flight else 0)
        conn = self._connection()
        try:
            conn.sendall(data)
            answer = conn.recv(1)
        except OSError as exc:  # a timeout too: a late answer must not reach the next request
            self._forget()
            raise AuditUnavailable("audit relay unreachable") from exc
        if answer == audit_relay.COMMITTED:
            return
        if not answer:  # the relay closed the connection: whether it committed is unknown
            self._forget()
        raise AuditUnavailable("audit write refused")

    def _connection(self) -> socket.socket:
        held = getattr(self._local, "held", None)
        if held is not None and (held.pid != os.getpid() or _closed_by_peer(held.conn)):
            self._forget()  # a restarted relay, or the parent's connection after a fork
            held = None
        if held is None:
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.settimeout(WAIT_SECONDS)
            try:
                conn.connect(self._relay_socket or self._own_relay())
            except OSError as exc:
                conn.close()
                raise AuditUnavailable("audit relay unreachable") from exc
            held = self._local.held = _Held(conn)
        return held.conn

    def _forget(self) -> None:
        self._local.held = None  # closes it

    def _own_relay(self) -> str:
        """This process's relay thread (started on first use, again after a fork)."""
        with self._starting:
            if self._own_pid != os.getpid():
                self._own = audit_relay.ThreadRelay(self._engine, self._linger)
                self._own_pid = os.getpid()
            return self._own.path

    def close(self) -> None:
        """Stop this process's relay thread, if it started one (tests, shutdown)."""
        self._forget()
        with self._starting:
            if self._own is not None and self._own_pid == os.getpid():
                self._own.close()
            self._own = self._own_pid = None


class _Held:
    """A thread's connection, closed when the thread ends (its thread-local goes) or the
    connection is forgotten."""

    __slots__ = ("conn", "pid")

    def __init__(self, conn: socket.socket):
        self.conn, self.pid = conn, os.getpid()

    def __del__(self):
        self.conn.close()


def _closed_by_peer(conn: socket.socket) -> bool:
    """Readable while no answer is due: the relay closed it (restarted, or drained)."""
    readable, _, _ = select.select([conn], [], [], 0)
    return bool(readable)
