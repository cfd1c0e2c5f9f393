"""Connections the database server closed are replaced, not used (db.py, audit_writer.py).

The pool pings a connection that sat idle for PING_AFTER_IDLE_SECONDS before handing it out
(SQLAlchemy's pre_ping pinged every checkout, one round trip per request); the audit writer
takes a pooled connection per batch. Here the server terminates every
connection the app holds, as a restart or failover would, and the next requests — Flask
path, fast path and the group-committed audit write — must all succeed.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from authserver import endpoints
from authserver.db import PING_AFTER_IDLE_SECONDS, make_engine
from tests.support.oauth import basic, register

pytestmark = pytest.mark.postgresql_only
CC = {"grant_type": "client_credentials"}


@pytest.fixture(params=["postgresql"])
def backend(request) -> str:
    return request.param


def _pid(conn) -> int:
    return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()


def test_connections_closed_by_the_server_are_replaced_after_idle(app, database_url):
    svc = app.extensions["authserver"]
    meta, secret = register(app, scope="read", default_scope="read")
    auth = basic(meta["client_id"], secret)
    http = app.test_client()
    for _ in range(2):  # the first through Flask (cache miss), the second fast
        assert http.post(endpoints.TOKEN, data=CC, headers=auth).status_code == 200
    token = http.post(endpoints.TOKEN, data=CC, headers=auth).get_json()["access_token"]
    # No background seal from here on: it would meet a dead connection first and make the
    # pool drop them all, hiding whether the requests' own checkouts are safe.
    svc.audit_sealer.wait()
    svc.audit_sealer.tick = lambda: None
    # Every connection of the app's pool (the audit writer's batches use it too), and more.
    held = [svc.engine.connect() for _ in range(4)]
    pids = {_pid(c) for c in held}
    for conn in held:
        conn.close()
    admin = create_engine(database_url)
    with admin.begin() as conn:
        killed = conn.execute(text("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) "
                                   "FROM pg_stat_activity WHERE pid = ANY(:pids)) t"),
                              {"pids": list(pids)}).scalar()
    admin.dispose()
    assert killed == len(pids) == 4
    time.sleep(PING_AFTER_IDLE_SECONDS + 0.2)

    answer = http.post(endpoints.INTROSPECTION, data={"token": token}, headers=auth)
    assert answer.status_code == 200 and answer.get_json()["active"] is True
    issued = http.post(endpoints.TOKEN, data=CC, headers=auth)  # fast path + audit writer
    assert issued.status_code == 200
    refused = http.post(endpoints.TOKEN, data=CC, headers=basic(meta["client_id"], "wrong"))
    assert refused.status_code == 401  # the Flask path, with its audit write
    with svc.engine.connect() as conn:
        assert _pid(conn) not in pids


def _terminate(database_url: str, pid: int) -> None:
    admin = create_engine(database_url)
    with admin.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()


def test_the_pool_pings_only_connections_idle_past_the_threshold(database_url):
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            pid = _pid(conn)
        _terminate(database_url, pid)
        time.sleep(PING_AFTER_IDLE_SECONDS + 0.2)
        with engine.connect() as conn:  # pinged, found dead, replaced
            assert _pid(conn) != pid
        # The trade-off (README, Performance): a connection back in the pool for less than
        # the threshold is handed out without a ping; if the server closed it meanwhile, the
        # statement fails and SQLAlchemy drops the pool's connections.
        with engine.connect() as conn:
            pid = _pid(conn)
        _terminate(database_url, pid)
        with engine.connect() as conn, pytest.raises(OperationalError):
            _pid(conn)
        with engine.connect() as conn:
            assert _pid(conn) != pid
    finally:
        engine.dispose()


def test_the_driver_paths_drop_a_dead_connection_and_its_pool(app, database_url):
    """Fast-path introspection and the audit writer run on driver connections
    (db.driver_connection). Under the ping threshold a connection the server closed fails its
    request (the documented trade-off), and is dropped with every older connection, as
    SQLAlchemy's Connection does: the next requests succeed on new connections."""
    svc = app.extensions["authserver"]
    meta, secret = register(app, scope="read", default_scope="read")
    auth = basic(meta["client_id"], secret)
    http = app.test_client()
    token = http.post(endpoints.TOKEN, data=CC, headers=auth).get_json()["access_token"]
    svc.audit_sealer.wait()
    svc.audit_sealer.tick = lambda: None
    for request in (
        lambda: http.post(endpoints.INTROSPECTION, data={"token": token}, headers=auth),
        lambda: http.post(endpoints.TOKEN, data=CC, headers=auth),
    ):
        held = [svc.engine.connect() for _ in range(3)]
        pids = {_pid(c) for c in held}
        for conn in held:
            conn.close()
        for pid in pids:
            _terminate(database_url, pid)
        failed = request()
        assert failed.status_code == 503  # the database's trouble: worth a retry
        assert failed.get_json()["error"] == "temporarily_unavailable"
        answer = request()
        assert answer.status_code == 200, answer.get_data()
        with svc.engine.connect() as conn:
            assert _pid(conn) not in pids


def test_a_driver_connection_goes_back_to_the_pool_transactional(database_url):
    """db.driver_connection lends a pooled connection in autocommit mode; whatever the block
    did (raised any error, left a transaction open), the pool gets it back in transactional
    mode and idle, so the ORM's next transaction on it is atomic."""
    from psycopg.pq import TransactionStatus

    from authserver.db import driver_connection

    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        with pytest.raises(ValueError), driver_connection(engine) as driver:
            assert driver.autocommit is True
            raise ValueError("not a database error")
        with driver_connection(engine) as driver:
            driver.execute("BEGIN")
            driver.execute("SELECT 1")
        with engine.connect() as conn:  # the pool's one connection, lent both times
            raw = conn.connection.driver_connection
            assert raw is driver
            assert raw.autocommit is False
            assert raw.info.transaction_status == TransactionStatus.IDLE
    finally:
        engine.dispose()
