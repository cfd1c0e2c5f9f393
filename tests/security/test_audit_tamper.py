"""Tampering with the audit log is detected (issue 5): `authserver audit verify`, run as the
real command, passes on an intact log and names the first broken entry after a row is edited,
a row in the middle is deleted, or the newest row is deleted — by direct SQL on the database.
Concurrent writers (a multi-worker server issuing tokens in parallel) keep the chain valid."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import text

from authserver import endpoints
from authserver.db import make_engine
from tests.support import cli
from tests.support.factories import basic_auth, make_client


def _verify(settings):
    return cli.run(settings, "audit", "verify", check=False)


def _issue_tokens(app, n: int) -> None:
    client, secret = make_client(app, scope="read", default_scope="read")
    http = app.test_client()
    for _ in range(n):
        response = http.post(endpoints.TOKEN, data={"grant_type": "client_credentials"},
                             headers=basic_auth(client["client_id"], secret))
        assert response.status_code == 200


def _sql(settings, statement: str, **params):
    engine = make_engine(settings.database_url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return result.fetchall() if result.returns_rows else result.rowcount
    finally:
        engine.dispose()


def _sealed_seqs(settings) -> list[int]:
    rows = _sql(settings, "SELECT seq FROM audit_events WHERE seq IS NOT NULL ORDER BY seq")
    return [r[0] for r in rows]


@pytest.fixture
def sealed_log(app, settings) -> list[int]:
    """A log of a few events, checked intact by the command (which also seals it)."""
    _issue_tokens(app, 4)
    result = _verify(settings)
    assert result.returncode == 0, result.stderr
    assert "intact" in result.stdout
    seqs = _sealed_seqs(settings)
    assert len(seqs) >= 6 and seqs == list(range(1, len(seqs) + 1))
    return seqs


def _assert_broken_at(settings, seq: int) -> None:
    result = _verify(settings)
    assert result.returncode != 0, result.stdout
    assert f"event {seq}:" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_verify_names_an_edited_event(settings, sealed_log):
    middle = sealed_log[len(sealed_log) // 2]
    changed = _sql(settings, "UPDATE audit_events SET details = :d WHERE seq = :s",
                   d='{"grant_type":"forged"}', s=middle)
    assert changed == 1
    _assert_broken_at(settings, middle)


@pytest.mark.parametrize("column,value", [("actor", "client:forged"), ("outcome", "forged"),
                                          ("ip", "10.0.0.1")])
def test_verify_detects_an_edit_of_any_field(settings, sealed_log, column, value):
    target = sealed_log[2]
    _sql(settings, f"UPDATE audit_events SET {column} = :v WHERE seq = :s", v=value, s=target)
    _assert_broken_at(settings, target)


def test_verify_names_a_deleted_event_in_the_middle(settings, sealed_log):
    middle = sealed_log[len(sealed_log) // 2]
    assert _sql(settings, "DELETE FROM audit_events WHERE seq = :s", s=middle) == 1
    _assert_broken_at(settings, middle)


def test_verify_detects_the_newest_event_deleted(settings, sealed_log):
    newest = sealed_log[-1]
    assert _sql(settings, "DELETE FROM audit_events WHERE seq = :s", s=newest) == 1
    _assert_broken_at(settings, newest)


def test_verify_detects_a_recomputed_row_swapped_in(settings, sealed_log):
    # Re-hashing the edited row alone does not help: the next row's link breaks.
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from authserver import audit
    from authserver.models import AuditEvent

    target = sealed_log[1]
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session, session.begin():
            row = session.scalars(select(AuditEvent).where(AuditEvent.seq == target)).one()
            row.details = '{"forged":true}'
            row.hash = audit.chain_hash(row.prev_hash, audit.canonical(row, target))
    finally:
        engine.dispose()
    _assert_broken_at(settings, target + 1)


def test_concurrent_writers_keep_one_valid_chain(app, settings, live_server):
    client, secret = make_client(app, scope="read", default_scope="read")
    server = live_server(workers=2, threads=4)
    auth = basic_auth(client["client_id"], secret)

    def issue(_):
        with requests.Session() as http:
            for _ in range(5):
                response = http.post(server.url + endpoints.TOKEN, headers=auth, timeout=30,
                                     data={"grant_type": "client_credentials"})
                assert response.status_code == 200, response.text[:200]

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(issue, range(8)))
    result = _verify(settings)
    assert result.returncode == 0, result.stderr
    issued = _sql(settings, "SELECT COUNT(*) FROM audit_events WHERE type = 'token.issued'")
    assert issued[0][0] == 40
    seqs = _sealed_seqs(settings)
    total = _sql(settings, "SELECT COUNT(*) FROM audit_events")[0][0]
    assert seqs == list(range(1, total + 1))  # every event chained, no gap, no fork
