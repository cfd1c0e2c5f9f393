"""Clients by id, cached per process, so authenticating a client costs no database read.

Invalidation across processes and instances: every transaction that changes a client bumps
the ``clients`` change counter (models/change_counter.py). Before each request (outside any
transaction, like the key set's tick) a process re-reads that counter at most every
``AUTHSERVER_CLIENT_CACHE_SECONDS`` and empties its cache when it moved; a change committed by
this process empties it at once. A refused authentication is decided once more on the stored
row (client_auth.py), so what a change *admits* (a new secret, a re-enabled client, new keys)
works everywhere at once; what it *takes away* (a disabled or deleted client, a rotated-out
secret, a narrowed allow-list) is in force on other processes within that many seconds.
0 reads the counter before every request: strict, at a measured cost (README, Performance).

Entries are detached ``Client`` objects that are shared by concurrent requests: read them,
never change them or add them to a session (admin code loads its own). Unknown ids are not
cached (a refusal would read them again anyway); the cache is bounded and starts over when
full.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..db import reading
from ..models.change_counter import CLIENTS, ChangeCounter, local_changes
from ..models.client import Client

log = logging.getLogger("authserver.clients")

MAX_ENTRIES = 50_000
_COUNTER = select(ChangeCounter.value).where(ChangeCounter.name == CLIENTS)


class ClientCache:
    def __init__(self, engine: Engine, max_age_seconds: float):
        self._engine, self._max_age = engine, max_age_seconds
        self._entries: dict[str, Client] = {}
        self._generation = 0  # bumped by every clear; a load started before one is dropped
        self._counter: int | None = None
        self._local = local_changes(CLIENTS)
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._entries = {}
            self._generation += 1

    def tick(self) -> None:
        """Before each request, outside any transaction (an SQLite writer inside the request
        would otherwise wait on itself): notice changes made here or elsewhere."""
        local = local_changes(CLIENTS)
        if local != self._local:
            self._local = local
            self.clear()
            # Read the counter now, past our own change: read later, its move (ours) would be
            # taken for another process's change and empty the cache a second time.
            self._checked_at = float("-inf")
        now = time.monotonic()
        if now - self._checked_at < self._max_age:
            return
        try:
            with reading(self._engine) as conn:  # before requests: never behind a writer
                counter = conn.execute(_COUNTER).scalar()
        except SQLAlchemyError as exc:
            # Unknown whether anything changed: serve nothing from the cache until a read
            # succeeds (what needs the database then fails on its own).
            log.warning("client cache check failed (%s)", type(exc).__name__)
            self._counter = None
            self.clear()
            return
        self._checked_at = now
        if counter != self._counter:
            self._counter = counter
            self.clear()

    def holds(self, client_id: str) -> bool:
        return client_id in self._entries

    def cached(self, client_id: str) -> Client | None:
        """The cached client, or None: never reads the database (fast_path.py)."""
        return self._entries.get(client_id)

    def get(self, session: Session, client_id: str, fresh: bool = False) -> Client | None:
        """The client (active or not), or None; loaded through ``session`` on a miss or
        when ``fresh`` (after a refusal: the cached entry may be older than a change)."""
        client = None if fresh else self._entries.get(client_id)
        if client is not None:
            return client
        generation = self._generation
        row = session.connection().execute(
            select(Client.__table__).where(Client.__table__.c.client_id == client_id)
        ).first()
        if row is None:
            return None
        client = Client(**row._mapping)  # transient: never in a session
        with self._lock:
            if generation == self._generation:
                if len(self._entries) >= MAX_ENTRIES:
                    self._entries = {}
                self._entries[client_id] = client
        return client
