"""Checks that run before every request (the client cache's counter, the key set's version)
or for the balancer (/readyz) read without waiting for a writer (db.reading, READ_ONLY): on
SQLite every other transaction takes the write lock up front, and would queue behind a write
transaction held elsewhere (sqlite_writes.py); on PostgreSQL readers never wait for row
locks. Real databases, the app's own engine."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from authserver.oauth.client_cache import ClientCache


@pytest.mark.settings(key_refresh_seconds=4)  # no key-set refresh (a writer) during the test
def test_readiness_and_the_before_request_checks_do_not_wait_for_a_writer(app, client):
    engine = app.extensions["authserver"].engine
    assert client.get("/readyz").status_code == 200  # the key set loaded (it writes at first)
    holder = engine.connect()
    # A write transaction left open: SQLite's write lock and this process's queue turn, a
    # row lock on PostgreSQL.
    holder.execute(text("UPDATE change_counters SET value = value + 1 WHERE name = 'clients'"))
    try:
        started = time.monotonic()
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.json
        assert ready.json["checks"]["database"] == "ok"
        assert time.monotonic() - started < 1.0

        cache = ClientCache(engine, max_age_seconds=0)
        started = time.monotonic()
        cache.tick()
        assert time.monotonic() - started < 1.0
        assert cache._counter is not None  # it did read the counter

        keyset = app.extensions["authserver"].keyset
        started = time.monotonic()
        keyset.refresh(force=True)  # the version and every key read again
        assert time.monotonic() - started < 1.0
        assert keyset.snapshot().signing
    finally:
        holder.rollback()
        holder.close()
