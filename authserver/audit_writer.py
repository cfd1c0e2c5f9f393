"""Group commit for audit events that accompany no other write (a client-credentials token).

``audit.record()`` writes an event in the caller's transaction, which is right when the event
belongs to a state change. A client-credentials issuance changes nothing but the audit log, so
a whole ORM transaction per token was most of that request's cost. Here each request hands
its event to one writer thread per process and waits until the event is committed: the writer
inserts everything that arrived meanwhile with one statement (one multi-row INSERT, one WAL
flush for many requests). Nothing is dropped and nothing is answered before its event is
durable; if the database refuses, every waiting request fails with the error.

Each batch is one INSERT on a pooled driver connection (``db.driver_connection``; no ping
while batches keep coming: the pool pings only connections idle for a second): on PostgreSQL
one prepared statement in autocommit mode, one round trip (``audit.append``). A batch whose
statement fails is refused (503 to its requests) and never retried: it may have committed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from . import audit, db

log = logging.getLogger("authserver.audit")

WAIT_SECONDS = 30.0  # a request never waits longer than this for its event's commit
MAX_BATCH = audit.MAX_ROWS_PER_INSERT  # a batch is one transaction


class AuditUnavailable(RuntimeError):
    """The event could not be committed: the request must fail, not answer."""


class _Pending:
    __slots__ = ("event", "done", "error")

    def __init__(self, event: dict):
        self.event, self.done, self.error = event, threading.Event(), None


class AuditWriter:
    def __init__(self, engine: Engine):
        self._engine = engine
        self._queue: deque[_Pending] = deque()
        self._wake = threading.Condition()
        self._pid: int | None = None  # the writer thread belongs to the process that started it

    def record(self, session: Session | None, type: str, **fields) -> None:
        """``audit.record`` when ``session`` has a transaction open (the event then commits
        with it; on SQLite that transaction holds the write lock, so waiting for the writer
        would wait on ourselves), else a group-committed write, done when this returns."""
        if session is not None and session.in_transaction():
            audit.record(session, type, **fields)
        else:
            self.write(audit.event_row(type, **fields))

    def write(self, event: dict) -> None:
        """Commit one event (``audit.event_row``) and return, or raise AuditUnavailable."""
        pending = _Pending(event)
        with self._wake:
            if self._pid != os.getpid():
                self._start()
            self._queue.append(pending)
            self._wake.notify()
        if not pending.done.wait(WAIT_SECONDS):
            raise AuditUnavailable("audit write timed out")
        if pending.error is not None:
            raise AuditUnavailable("audit write failed") from pending.error

    def _start(self) -> None:
        self._pid = os.getpid()
        threading.Thread(target=self._run, name="audit-writer", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._queue:
                    self._wake.wait()
                batch = [self._queue.popleft() for _ in range(min(MAX_BATCH, len(self._queue)))]
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        events = [p.event for p in batch]
        try:
            self._insert(events)
        except Exception as exc:  # noqa: BLE001 - handed to every waiting request
            log.error("audit write failed (%s)", type(exc).__name__)
            for p in batch:
                p.error = exc
        finally:
            for p in batch:
                p.done.set()
        if batch[0].error is None:
            audit.written(events)

    def _insert(self, events: list[dict]) -> None:
        with db.driver_connection(self._engine) as driver:
            audit.append(driver, self._engine.dialect, events)
