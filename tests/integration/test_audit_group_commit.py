"""Client-credentials issuances are audited through the group-committing writer
(audit_writer.py): the event is committed before the token is answered, concurrent
issuances share commits, and a refused audit write refuses the token."""

from __future__ import annotations

import json
import threading

from sqlalchemy import select

from authserver import audit
from authserver.models import AuditEvent
from tests.support.databases import refusing_token_events
from tests.support.oauth import basic, register

CC = {"grant_type": "client_credentials"}


def _issued_jtis(app) -> list[str]:
    with app.extensions["authserver"].session_factory() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.type == "token.issued"))
        return [json.loads(r.details)["jti"] for r in rows]


def _jti(app, token: str) -> str:
    import jwt

    return jwt.decode(token, options={"verify_signature": False})["jti"]


def test_the_event_is_committed_before_the_token_is_answered(app, client):
    meta, secret = register(app, scope="a", default_scope="a")
    for _ in range(3):
        response = client.post("/oauth2/token", data=CC, headers=basic(meta["client_id"], secret))
        assert response.status_code == 200
        # Read from another session right away: the row is there, not merely queued.
        assert _jti(app, response.json["access_token"]) in _issued_jtis(app)


def test_concurrent_issuances_share_commits(app, monkeypatch):
    meta, secret = register(app, scope="a", default_scope="a")
    headers = basic(meta["client_id"], secret)
    svc = app.extensions["authserver"]
    batches: list[list[str]] = []  # the request ids of each batch's events
    append = audit.append_sealed

    def counting(driver, dialect, events, head):
        batches.append([e["request_id"] for e in events])
        return append(driver, dialect, events, head)

    # The first authentication loads the client (Flask path, its event in that transaction,
    # sealed later); from then on every issuance's event goes through the writer.
    assert app.test_client().post("/oauth2/token", data=CC, headers=headers).status_code == 200
    monkeypatch.setattr(audit, "append_sealed", counting)
    tokens: list[str] = []

    def issue():
        c = app.test_client()
        for _ in range(10):
            r = c.post("/oauth2/token", data=CC, headers=headers)
            assert r.status_code == 200
            tokens.append(r.json["access_token"])

    threads = [threading.Thread(target=issue) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(tokens) == 160
    assert set(_jti(app, t) for t in tokens) <= set(_issued_jtis(app))  # none lost
    sizes = [len(b) for b in batches]
    assert sum(sizes) == 160 and max(sizes) > 1, sizes  # some commits carried several
    assert len(batches) < 160
    # Sealed a moment later (audit.Sealer): the chain covers them all and verifies.
    svc.audit_sealer.wait()
    with svc.session_factory() as session:
        audit.seal_all(session)
        rows = session.scalars(select(AuditEvent).where(AuditEvent.type == "token.issued")).all()
        assert len(rows) == 161 and all(r.seq is not None for r in rows)
        assert audit.verify(session) is None


def test_a_refused_audit_write_refuses_the_token(app, client, backend):
    meta, secret = register(app, scope="a", default_scope="a")
    # The client is cached now: the next issuance writes nothing but its event.
    assert client.post("/oauth2/token", data=CC,
                       headers=basic(meta["client_id"], secret)).status_code == 200
    with refusing_token_events(app.extensions["authserver"].engine, backend):
        response = client.post("/oauth2/token", data=CC, headers=basic(meta["client_id"], secret))
    assert response.status_code == 503
    assert response.json["error"] == "temporarily_unavailable"
    assert "access_token" not in response.json
    assert response.headers["Cache-Control"] == "no-store"
    assert len(_issued_jtis(app)) == 1  # the warm-up's only


def test_writers_of_two_instances_and_the_sealer_share_one_chain(app, settings):
    """Two instances (two engines, two writers, two sealers) write batches while Flask-path
    events are written by audit.record, and seals run under the chain head's lock:
    afterwards every event has a unique sequence number and the chain verifies."""
    from authserver import create_app

    other = create_app(settings)
    try:
        meta, secret = register(app, scope="a", default_scope="a")
        good, bad = basic(meta["client_id"], secret), basic(meta["client_id"], "wrong")
        errors: list[int] = []

        def issue(instance, headers, expected):
            c = instance.test_client()
            for _ in range(15):
                status = c.post("/oauth2/token", data=CC, headers=headers).status_code
                if status != expected:
                    errors.append(status)

        threads = [threading.Thread(target=issue, args=(inst, good, 200))
                   for inst in (app, other) for _ in range(4)]
        # Refused authentications: Flask path, client.auth_failed through audit.record.
        threads += [threading.Thread(target=issue, args=(app, bad, 401)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        svc = app.extensions["authserver"]
        svc.audit_sealer.wait()
        with svc.session_factory() as session:
            audit.seal_all(session)
            events = session.scalars(select(AuditEvent)).all()
            assert len(events) >= 8 * 15 + 2 * 15
            seqs = [e.seq for e in events]
            assert None not in seqs and sorted(seqs) == list(range(1, len(events) + 1))
            assert audit.verify(session) is None
    finally:
        other.extensions["authserver"].close()


def test_an_unreachable_database_refuses_the_batch_at_once():
    """A checkout that fails refuses the events at hand (503 upstream) instead of leaving
    their requests waiting out WAIT_SECONDS; the writer goes on with the next batch."""
    import time

    import pytest

    from authserver.audit_writer import WAIT_SECONDS, AuditUnavailable, AuditWriter
    from authserver.db import make_engine

    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:9/none?connect_timeout=2")
    writer = AuditWriter(engine)
    try:
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(AuditUnavailable):
                writer.write(audit.event_row("token.issued", actor="client:x"))
            assert time.monotonic() - started < min(5, WAIT_SECONDS)
    finally:
        writer.close()
        engine.dispose()
