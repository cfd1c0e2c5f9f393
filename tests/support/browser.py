"""Helpers for the browser pages through Flask's test client: people, forms, sign-in.

``make_person`` writes a user row directly (the admin service may hash differently in a later
version; these tests are about the pages, not user administration).
"""

from __future__ import annotations

import re
import secrets
from html import unescape

from authserver import clock
from authserver.extensions import services
from authserver.models import AuditEvent, User
from authserver.oidc.sessions import COOKIE_NAME
from authserver.security.passwords import hash_password

PASSWORD = "correct horse battery staple"

_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def make_person(app, username: str = "alice", password: str = PASSWORD, *,
                email: str | None = "alice@example.test", name: str | None = "Alice Example",
                enabled: bool = True, password_hash: str | None = None) -> User:
    now = clock.now()
    user = User(id=secrets.token_hex(8), username=username,
                password_hash=password_hash or hash_password(password), email=email,
                email_verified=bool(email), name=name, enabled=enabled,
                created_at=now, updated_at=now)
    with services(app).session_factory() as db:
        db.add(user)
        db.commit()
    return user


def hidden_fields(html: str) -> dict[str, str]:
    return {name: unescape(value) for name, value in _HIDDEN.findall(html)}


def csrf_token(html: str) -> str:
    token = hidden_fields(html).get("csrf_token")
    assert token, "page has no CSRF token"
    return token


def session_cookie(client) -> str | None:
    cookie = client.get_cookie(COOKIE_NAME)
    return cookie.value if cookie else None


def sign_in(client, username: str = "alice", password: str = PASSWORD, next_url: str = ""):
    """Fetch the login page, post the form with its CSRF token; the response."""
    page = client.get("/login", query_string={"next": next_url} if next_url else None)
    assert page.status_code == 200
    form = {"csrf_token": csrf_token(page.get_data(as_text=True)),
            "username": username, "password": password}
    if next_url:
        form["next"] = next_url
    return client.post("/login", data=form)


def audit_events(app, type_prefix: str = "") -> list[AuditEvent]:
    from sqlalchemy import select

    with services(app).session_factory() as db:
        rows = db.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
    return [r for r in rows if r.type.startswith(type_prefix)]
