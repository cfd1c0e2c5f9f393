"""The sign-in page: form shape, sessions, cookies, failures, audit (CONTRACT §4 browser pages).
Consent through the authorization endpoint is in test_authorization_code.py."""

from __future__ import annotations

import re

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from authserver import clock
from authserver.extensions import services
from authserver.models import BrowserSession, User
from authserver.oidc.sessions import COOKIE_NAME
from authserver.security.passwords import verify_password
from tests.support.browser import (
    PASSWORD,
    audit_events,
    csrf_token,
    make_person,
    session_cookie,
    sign_in,
)


def _sessions(app) -> list[BrowserSession]:
    with services(app).session_factory() as db:
        return db.scalars(select(BrowserSession)).all()


def test_login_page_is_an_accessible_form_with_the_contract_fields(client):
    response = client.get("/login")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert '<html lang="en">' in html
    assert re.search(r"<h1[^>]*>Sign in</h1>", html)
    assert 'name="username"' in html and 'name="password"' in html
    assert '<label for="username">' in html and '<label for="password">' in html
    assert len(re.findall(r"<button[^>]*type=\"submit\"", html)) == 1
    assert csrf_token(html)
    assert "http://" not in html.replace('lang="en"', "")  # no external assets
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_sign_in_sets_a_session_cookie_and_stores_only_its_digest(app, client):
    make_person(app)
    response = sign_in(client)
    assert response.status_code == 200
    assert "You are signed in as alice" in response.get_data(as_text=True)
    cookie_header = next(h for h in response.headers.getlist("Set-Cookie")
                         if h.startswith(COOKIE_NAME + "="))
    assert "HttpOnly" in cookie_header and "SameSite=Lax" in cookie_header
    assert "Path=/" in cookie_header and "Secure" not in cookie_header  # http issuer
    value = session_cookie(client)
    (record,) = _sessions(app)
    assert record.id != value and value not in record.id and record.sid != value
    assert record.ended_at is None and record.expires_at > clock.now()


@pytest.mark.settings(issuer="https://auth.example.test")
def test_every_cookie_is_secure_when_the_issuer_is_https(app, client):
    make_person(app)
    response = sign_in(client)
    cookies = response.headers.getlist("Set-Cookie")
    assert {c.split("=", 1)[0] for c in cookies} >= {COOKIE_NAME}
    for cookie in cookies + client.get("/login").headers.getlist("Set-Cookie"):
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_after_sign_in_the_browser_returns_to_the_authorization_request(app, client):
    make_person(app)
    target = "/oauth2/authorize?client_id=abc&response_type=code"
    response = sign_in(client, next_url=target)
    assert response.status_code == 303
    assert response.headers["Location"] == target


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/oauth2/authorize", "/admin/clients",
    "/\\evil.example", "javascript:alert(1)",
])
def test_next_is_never_an_open_redirect(app, client, target):
    make_person(app)
    response = sign_in(client, next_url=target)
    assert response.status_code == 200
    assert "Location" not in response.headers


def test_wrong_password_and_unknown_user_get_the_same_answer(app, client):
    make_person(app)
    wrong = sign_in(client, "alice", "not the password")
    unknown = sign_in(client, "mallory", "not the password")
    disabled_user = make_person(app, "bob", enabled=False)
    disabled = sign_in(client, disabled_user.username, PASSWORD)

    def message(response):
        return re.search(r'role="alert"[^>]*>([^<]+)<', response.get_data(as_text=True))[1]

    assert wrong.status_code == unknown.status_code == disabled.status_code == 200
    assert message(wrong) == message(unknown) == message(disabled)
    assert session_cookie(client) is None and _sessions(app) == []
    failed = audit_events(app, "login.failed")
    assert [e.outcome for e in failed] == ["failure"] * 3
    assert failed[1].actor == "system" and '"username_known":false' in failed[1].details
    assert failed[0].actor.startswith("user:") and "not the password" not in failed[0].details
    assert all("mallory" not in e.details for e in failed)


def test_successful_sign_in_is_audited_with_the_session_id(app, client):
    user = make_person(app)
    sign_in(client)
    (event,) = audit_events(app, "login.succeeded")
    (record,) = _sessions(app)
    assert event.actor == f"user:{user.id}" and record.sid in event.details
    assert PASSWORD not in event.details


def test_sign_in_post_without_the_csrf_token_changes_nothing(app, client):
    make_person(app)
    client.get("/login")  # the browser has a CSRF secret, the attacker's form has no token
    for form in ({}, {"csrf_token": "forged"}):
        response = client.post("/login", data={**form, "username": "alice",
                                               "password": PASSWORD})
        assert response.status_code == 400
        assert response.headers["Content-Type"].startswith("text/html")
    assert session_cookie(client) is None and _sessions(app) == []
    assert audit_events(app, "login.") == []


def test_a_csrf_token_from_another_browser_is_refused(app, client):
    make_person(app)
    other = app.test_client()
    token = csrf_token(other.get("/login").get_data(as_text=True))
    client.get("/login")
    response = client.post("/login", data={"csrf_token": token, "username": "alice",
                                           "password": PASSWORD})
    assert response.status_code == 400 and _sessions(app) == []


def test_password_is_rehashed_when_argon2_parameters_changed(app, client):
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    user = make_person(app, password_hash=weak)
    assert sign_in(client).status_code == 200
    with services(app).session_factory() as db:
        stored = db.get(User, user.id).password_hash
    assert stored != weak and verify_password(PASSWORD, stored)


def test_a_new_sign_in_replaces_the_old_session(app, client):
    make_person(app)
    sign_in(client)
    first = session_cookie(client)
    sign_in(client)
    assert session_cookie(client) != first
    records = sorted(_sessions(app), key=lambda r: r.created_at)
    assert records[0].ended_at is not None and records[1].ended_at is None
    (ended,) = audit_events(app, "session.ended")
    assert '"reason":"replaced"' in ended.details
