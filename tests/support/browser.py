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
        rows = db.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    return [r for r in rows if r.type.startswith(type_prefix)]


# -- the authorization code flow through the test client ----------------------------------

REDIRECT_URI = "https://rp.example.test/callback"
RP_SCOPE = "openid profile email offline_access"


def pkce_pair() -> tuple[str, str]:
    from authserver.oauth.pkce import s256

    verifier = secrets.token_urlsafe(48)
    return verifier, s256(verifier)


def make_rp(app, **metadata) -> tuple[dict, str | None]:
    """A relying party: authorization_code + refresh_token, client_secret_basic."""
    from tests.support.factories import make_client

    metadata.setdefault("client_name", "Example App")
    metadata.setdefault("grant_types", ["authorization_code", "refresh_token"])
    metadata.setdefault("redirect_uris", [REDIRECT_URI])
    metadata.setdefault("scope", RP_SCOPE)
    return make_client(app, **metadata)


def authorization_params(rp: dict, challenge: str, **overrides) -> dict:
    params = {"response_type": "code", "client_id": rp["client_id"],
              "redirect_uri": rp["redirect_uris"][0], "scope": "openid profile email",
              "state": "st-" + secrets.token_hex(4), "nonce": "n-" + secrets.token_hex(4),
              "code_challenge": challenge, "code_challenge_method": "S256"}
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def query_of(location: str) -> dict[str, str]:
    from urllib.parse import parse_qs, urlsplit

    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def decide(client, consent_page, decision: str = "allow"):
    """Post the consent form shown in ``consent_page`` with ``decision``."""
    fields = hidden_fields(consent_page.get_data(as_text=True))
    return client.post("/oauth2/authorize", data={**fields, "decision": decision})


def get_code(client, rp: dict, **overrides) -> tuple[str, str, dict]:
    """Run the front channel for a signed-in browser: (code, verifier, params); consents
    when asked."""
    verifier, challenge = pkce_pair()
    params = authorization_params(rp, challenge, **overrides)
    response = client.get("/oauth2/authorize", query_string=params)
    if response.status_code == 200 and 'name="decision"' in response.get_data(as_text=True):
        response = decide(client, response)
    assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]
    query = query_of(response.headers["Location"])
    assert "code" in query, query
    return query["code"], verifier, params


def exchange(client, rp: dict, secret: str | None, code: str, verifier: str | None,
             redirect_uri: str | None = None):
    from tests.support.factories import basic_auth

    form = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": redirect_uri or rp["redirect_uris"][0]}
    if verifier is not None:
        form["code_verifier"] = verifier
    headers = basic_auth(rp["client_id"], secret) if secret else {}
    if not secret:
        form["client_id"] = rp["client_id"]
    return client.post("/oauth2/token", data=form, headers=headers)


def refresh(client, rp: dict, secret: str | None, refresh_token: str, scope: str | None = None):
    from tests.support.factories import basic_auth

    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if scope is not None:
        form["scope"] = scope
    headers = basic_auth(rp["client_id"], secret) if secret else {}
    if not secret:
        form["client_id"] = rp["client_id"]
    return client.post("/oauth2/token", data=form, headers=headers)


def introspect(app, token: str, as_client: tuple[str, str] | None = None) -> dict:
    """Introspection by ``as_client`` (client_id, secret) or a new resource-server client."""
    from tests.support.factories import basic_auth, make_client

    if as_client is None:
        rs, rs_secret = make_client(app, client_name="resource server " + secrets.token_hex(2))
        as_client = (rs["client_id"], rs_secret)
    response = app.test_client().post("/oauth2/introspect", data={"token": token},
                                      headers=basic_auth(*as_client))
    assert response.status_code == 200, response.get_data()[:300]
    return response.get_json()


def signed_in_rp(app, client, **rp_metadata) -> tuple[dict, str | None]:
    """A person signed in at ``client`` and a relying party that skips consent (unless told
    otherwise): (rp, secret)."""
    make_person(app)
    rp_metadata.setdefault("skip_consent", True)
    rp, secret = make_rp(app, **rp_metadata)
    sign_in(client)
    return rp, secret


def signed_in_tokens(app, client, **rp_metadata) -> tuple[dict, str, dict]:
    """A person signed in, a consenting RP, one code exchanged: (rp, secret, token body)."""
    rp, secret = signed_in_rp(app, client, **rp_metadata)
    code, verifier, _ = get_code(client, rp)
    response = exchange(client, rp, secret, code, verifier)
    assert response.status_code == 200, response.get_json()
    return rp, secret, response.get_json()
