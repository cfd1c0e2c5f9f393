"""The per-process client cache (oauth/client_cache.py): a client change made in this
process empties it once, not again at the next periodic read of the change counter."""

from __future__ import annotations

from authserver.oauth.client_cache import ClientCache
from tests.support.oauth import register


def test_a_change_made_here_empties_the_cache_once(app):
    svc = app.extensions["authserver"]
    cache = ClientCache(svc.engine, max_age_seconds=3600)
    first, _ = register(app, scope="a")
    cache.tick()  # the counter read once
    second, _ = register(app, scope="a")  # a change committed in this process

    cache.tick()  # notices it: emptied, and the counter read again, past the change
    with svc.session_factory() as session:
        assert cache.get(session, second["client_id"]) is not None
    assert cache.cached(second["client_id"]) is not None

    cache._checked_at = float("-inf")  # the interval is over: the counter is read again
    cache.tick()
    assert cache.cached(second["client_id"]) is not None  # our own change: no second clear


def test_a_change_made_elsewhere_empties_it_at_the_next_read(app):
    svc = app.extensions["authserver"]
    cache = ClientCache(svc.engine, max_age_seconds=3600)
    meta, _ = register(app, scope="a")
    cache.tick()
    with svc.session_factory() as session:
        assert cache.get(session, meta["client_id"]) is not None
    with svc.engine.begin() as conn:  # another process's change: only the counter says so
        conn.exec_driver_sql("UPDATE change_counters SET value = value + 1 "
                             "WHERE name = 'clients'")
    cache.tick()
    assert cache.cached(meta["client_id"]) is not None  # within the interval: still served
    cache._checked_at = float("-inf")
    cache.tick()
    assert cache.cached(meta["client_id"]) is None
