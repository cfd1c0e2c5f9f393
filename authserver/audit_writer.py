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
import queue
import threading

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from . import audit, db

log = logging.getLogger("authserver.audit")

WAIT_SECONDS = 30.0  # a request never waits longer than this for its event's commit
MAX_BATCH = audit.MAX_ROWS_PER_INSERT  # a batch is one transaction


class AuditUnavailable(RuntimeError):
    """The event could not be committed: the request must fail, not answer."""


class _Pending:
    """One event and its waiter: a lock taken at creation, released by the writer once the
    event is committed or refused (a bare lock: a threading.Event is a Condition and a lock
    in Python code, measured on every token)."""

    __slots__ = ("event", "committed", "error")

    def __init__(self, event: dict):
        self.event, self.error = event, None
        self.committed = threading.Lock()
        self.committed.acquire()


class AuditWriter:
    def __init__(self, engine: Engine):
        self._engine = engine
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._starting = threading.Lock()
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
        if self._pid != os.getpid():
            self._start()
        pending = _Pending(event)
        self._queue.put(pending)
        if not pending.committed.acquire(timeout=WAIT_SECONDS):
            raise AuditUnavailable("audit write timed out")
        if pending.error is not None:
            raise AuditUnavailable("audit write failed") from pending.error

    def _start(self) -> None:
        with self._starting:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._queue = queue.SimpleQueue()  # a parent's queue has no writer here
            threading.Thread(target=self._run, name="audit-writer", daemon=True).start()

    def _take(self, block: bool) -> list[_Pending]:
        """What is queued, up to MAX_BATCH; waits for a first event when ``block``."""
        batch: list[_Pending] = []
        try:
            batch.append(self._queue.get(block))
            while len(batch) < MAX_BATCH:
                batch.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return batch

    def _run(self) -> None:
        while True:
            batch = self._take(block=True)
            done: list[_Pending] = []  # committed, not answered yet
            # One pooled connection for as long as batches keep coming (no checkout per
            # batch). It goes back to the pool once the queue is empty and before the last
            # batch is answered: an idle connection is pinged before its next use like any
            # other (db.py), and none is left checked out once every request has its answer
            # (an engine disposed then closes them all). A failed checkout or statement
            # refuses the batch at hand; a lost connection is dropped there.
            try:
                with db.driver_connection(self._engine) as driver:
                    while batch:
                        audit.append(driver, self._engine.dialect, [p.event for p in batch])
                        done, batch = batch, self._take(block=False)
                        if batch:  # more to write: answer these, keep the connection
                            _answer(done)
                            done = []
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                log.error("audit write failed (%s)", type(exc).__name__)
                _release(batch, exc)
            _answer(done)


def _answer(batch: list[_Pending]) -> None:
    _release(batch, None)
    _written([p.event for p in batch])


def _release(batch: list[_Pending], error: Exception | None) -> None:
    for p in batch:
        p.error = error
        p.committed.release()


def _written(events: list[dict]) -> None:
    """The committed events' log lines and metrics; their requests are answered already."""
    try:
        audit.written(events)
    except Exception as exc:  # noqa: BLE001 - the events are durable; say so and go on
        log.error("audit events committed, their log lines failed (%s)", type(exc).__name__)
