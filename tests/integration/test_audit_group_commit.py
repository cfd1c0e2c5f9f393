"""Client-credentials issuances are audited through the group-committing writer
(audit_writer.py): the event is committed before the token is answered, concurrent
issuances share commits, and a refused audit write refuses the token."""

from __future__ import annotations

import json
import threading

from sqlalchemy import event, select, text

from authserver.models import AuditEvent
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


def test_concurrent_issuances_share_commits(app):
    meta, secret = register(app, scope="a", default_scope="a")
    headers = basic(meta["client_id"], secret)
    engine = app.extensions["authserver"].engine
    batches: list[int] = []

    @event.listens_for(engine, "before_cursor_execute")
    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO audit_events"):
            # One multi-row INSERT per batch (audit_writer.py); ORM inserts are executemany.
            rows = statement.count(" VALUES ") and (statement.count("), (") + 1)
            batches.append(len(parameters) if executemany else rows)

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
    event.remove(engine, "before_cursor_execute", count)

    assert len(tokens) == 160
    assert sorted(_jti(app, t) for t in tokens) == sorted(_issued_jtis(app))  # none lost
    assert sum(batches) >= 160 and max(batches) > 1, batches  # some commits carried several
    assert len(batches) < 160


def test_a_refused_audit_write_refuses_the_token(app, client, backend):
    meta, secret = register(app, scope="a", default_scope="a")
    # The client is cached now: the next issuance writes nothing but its event.
    assert client.post("/oauth2/token", data=CC,
                       headers=basic(meta["client_id"], secret)).status_code == 200
    engine = app.extensions["authserver"].engine
    if backend == "sqlite":
        create = ("CREATE TRIGGER refuse_tokens BEFORE INSERT ON audit_events "
                  "WHEN NEW.type = 'token.issued' BEGIN SELECT RAISE(ABORT, 'refused'); END")
        drop = "DROP TRIGGER refuse_tokens"
    else:
        create = ("ALTER TABLE audit_events ADD CONSTRAINT refuse_tokens "
                  "CHECK (type <> 'token.issued') NOT VALID")
        drop = "ALTER TABLE audit_events DROP CONSTRAINT refuse_tokens"
    with engine.begin() as conn:
        conn.execute(text(create))
    try:
        response = client.post("/oauth2/token", data=CC, headers=basic(meta["client_id"], secret))
    finally:
        with engine.begin() as conn:
            conn.execute(text(drop))
    assert response.status_code == 503
    assert response.json["error"] == "temporarily_unavailable"
    assert "access_token" not in response.json
    assert response.headers["Cache-Control"] == "no-store"
    assert len(_issued_jtis(app)) == 1  # the warm-up's only
