"""Admin API, users (CONTRACT §5): create with top-level claims, read, soft delete that ends
sessions and revokes refresh families; never the password or its hash."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from authserver import clock
from authserver.models import AuditEvent, BrowserSession, RefreshFamily, User
from authserver.security.passwords import verify_password
from tests.support.factories import admin_token, bearer


@pytest.fixture
def admin(app):
    return bearer(admin_token(app))


def _counts(app):
    with app.extensions["authserver"].session_factory() as session:
        return (session.scalar(select(func.count()).select_from(User)),
                session.scalar(select(func.count()).select_from(AuditEvent)))


ALICE = {"username": "alice", "password": "correct horse battery", "email": "alice@example.test",
         "email_verified": True, "name": "Alice Liddell", "given_name": "Alice",
         "family_name": "Liddell"}


def test_create_and_get_user_returns_claims_never_the_password(app, client, admin):
    created = client.post("/admin/users", json=ALICE, headers=admin)
    assert created.status_code == 201, created.get_json()
    assert created.headers["Cache-Control"] == "no-store"
    body = created.get_json()
    assert set(body) == {"id", "username", "email", "email_verified", "name", "given_name",
                         "family_name", "created_at"}
    assert {k: body[k] for k in ALICE if k != "password"} == {
        k: v for k, v in ALICE.items() if k != "password"}
    text = created.get_data(as_text=True)
    assert ALICE["password"] not in text and "argon2" not in text
    shown = client.get(f"/admin/users/{body['id']}", headers=admin)
    assert shown.status_code == 200 and shown.get_json() == body
    with app.extensions["authserver"].session_factory() as session:
        user = session.get(User, body["id"])
        assert user.password_hash.startswith("$argon2id$")
        assert verify_password(ALICE["password"], user.password_hash)
        event = session.scalars(select(AuditEvent).where(AuditEvent.type == "user.created")
                                ).one()
    assert event.actor.startswith("client:") and ALICE["password"] not in event.details


def test_minimal_user(client, admin):
    created = client.post("/admin/users", headers=admin,
                          json={"username": "bob", "password": "long enough"})
    assert created.status_code == 201
    assert created.get_json()["email"] is None
    assert created.get_json()["email_verified"] is False


USER_REFUSALS = [
    {"password": "long enough"},
    {"username": "bob"},
    {"username": "bob", "password": "short"},
    {"username": "bob", "password": 12345678},
    {"username": "", "password": "long enough"},
    {"username": "bob smith", "password": "long enough"},
    {"username": "bob\x00", "password": "long enough"},
    {"username": 7, "password": "long enough"},
    {"username": "bob", "password": "long enough", "email": "not-an-email"},
    {"username": "bob", "password": "long enough", "email_verified": "yes"},
    {"username": "bob", "password": "long enough", "email_verified": True},
    {"username": "bob", "password": "long enough", "name": 5},
    {"username": "bob", "password": "long enough", "name": "a\x07b"},
    {"username": "bob", "password": "long enough", "is_admin": True},
    {"username": "bob", "password": "long enough", "password_hash": "$argon2id$..."},
    [], "bob",
]


@pytest.mark.parametrize("payload", USER_REFUSALS)
def test_invalid_user_is_refused_and_changes_nothing(app, client, admin, payload):
    before = _counts(app)
    response = client.post("/admin/users", json=payload, headers=admin)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_request" and isinstance(body["error_description"], str)
    assert "long enough" not in response.get_data(as_text=True)
    assert _counts(app) == before


def test_malformed_json_user_is_refused(app, client, admin):
    before = _counts(app)
    response = client.post("/admin/users", data=b'{"username": ', headers=admin,
                           content_type="application/json")
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"
    assert _counts(app) == before


def test_duplicate_username_is_a_conflict(app, client, admin):
    assert client.post("/admin/users", json=ALICE, headers=admin).status_code == 201
    before = _counts(app)
    again = client.post("/admin/users", json={**ALICE, "email": "other@example.test"},
                        headers=admin)
    assert again.status_code == 409 and again.get_json()["error"] == "conflict"
    assert _counts(app) == before


def test_delete_user_ends_sessions_and_revokes_refresh_families(app, client, admin):
    user = client.post("/admin/users", json=ALICE, headers=admin).get_json()
    now = clock.now()
    with app.extensions["authserver"].session_factory() as session:
        session.add(BrowserSession(id="d" * 64, sid="sid-1", user_id=user["id"], auth_time=now,
                                   created_at=now, expires_at=now + timedelta(hours=1)))
        session.add(RefreshFamily(id="fam-1", client_id="c", user_id=user["id"], scope="openid",
                                  auth_time=now, created_at=now))
        session.commit()
    deleted = client.delete(f"/admin/users/{user['id']}", headers=admin)
    assert deleted.status_code == 204 and deleted.get_data() == b""
    assert client.get(f"/admin/users/{user['id']}", headers=admin).status_code == 404
    assert client.delete(f"/admin/users/{user['id']}", headers=admin).status_code == 404
    with app.extensions["authserver"].session_factory() as session:
        row = session.get(User, user["id"])
        assert row.deleted_at is not None and row.enabled is False
        assert session.get(BrowserSession, "d" * 64).ended_at is not None
        family = session.get(RefreshFamily, "fam-1")
        assert family.revoked_at is not None and family.revoke_reason == "user_deleted"
        types = [json.loads(e.details).get("user_id") for e in session.scalars(
            select(AuditEvent).where(AuditEvent.type == "user.deleted"))]
    assert types == [user["id"]]


def test_unknown_user_is_404(client, admin):
    for path in ("/admin/users/nope", "/admin/users/%00", "/admin/users/" + "x" * 65):
        assert client.get(path, headers=admin).status_code == 404
        assert client.delete(path, headers=admin).status_code == 404
