"""The verified-token cache (oauth/access_tokens._VERIFIED): a token whose signature was
verified once is not verified again while the key set is unchanged. These attacks show it
never answers for a token it should refuse: another signature on the same claims, a key
revoked on another instance, an expired token, a tampered copy of the claims it returned."""

from __future__ import annotations

import jwt
import pytest

from authserver import clock, create_app
from authserver.oauth import access_tokens
from tests.support.browser import introspect
from tests.support.factories import admin_token, bearer, client_credentials_token, make_client


@pytest.fixture
def cc(app):
    body, secret = make_client(app, client_name="svc", scope="read", default_scope="read")
    return body["client_id"], secret


def _cached(app, token: str) -> bool:
    return access_tokens._VERIFIED.get(app.extensions["authserver"], token) is not None


def test_another_signature_on_cached_claims_is_refused(app, cc):
    token = client_credentials_token(app, *cc)
    assert introspect(app, token)["active"] is True and _cached(app, token)
    head, payload, signature = token.split(".")
    for forged in (f"{head}.{payload}.{signature[:-4]}AAAA", f"{head}.{payload}.",
                   f"{head}.{payload}.{signature}="):
        assert introspect(app, forged) == {"active": False}
        assert not _cached(app, forged)


def test_a_key_revoked_on_another_instance_ends_its_cached_tokens(app, cc, settings):
    token = client_credentials_token(app, *cc)
    assert introspect(app, token)["active"] is True and _cached(app, token)
    kid = jwt.get_unverified_header(token)["kid"]
    other = create_app(settings)
    try:
        revoked = other.test_client().post(f"/admin/keys/{kid}/revoke",
                                           headers=bearer(admin_token(other)))
        assert revoked.status_code == 200
    finally:
        other.extensions["authserver"].close()
    app.extensions["authserver"].keyset.refresh(force=True)  # the next tick, at the latest
    assert not _cached(app, token)
    assert introspect(app, token) == {"active": False}


def test_a_cached_token_expires_on_time(app, cc):
    token = client_credentials_token(app, *cc)
    assert introspect(app, token)["active"] is True and _cached(app, token)
    claims = jwt.decode(token, options={"verify_signature": False})
    clock.travel(claims["exp"] - claims["iat"] + 1)
    assert _cached(app, token)  # still remembered: only the times decide
    assert introspect(app, token) == {"active": False}


def test_callers_get_their_own_copy_of_the_claims(app, cc):
    svc = app.extensions["authserver"]
    token = client_credentials_token(app, *cc)
    first = access_tokens.decode(svc, token)
    first["scope"], first["exp"] = "admin", first["exp"] + 10**6
    again = access_tokens.decode(svc, token)
    assert again["scope"] == "read" and again["exp"] != first["exp"]


def test_the_cache_is_bounded(app, cc, monkeypatch):
    monkeypatch.setattr(access_tokens._VerifiedTokens, "MAX_ENTRIES", 3)
    monkeypatch.setattr(access_tokens, "_VERIFIED", access_tokens._VerifiedTokens())
    tokens = [client_credentials_token(app, *cc) for _ in range(5)]
    for token in tokens:
        assert introspect(app, token)["active"] is True
    assert [_cached(app, t) for t in tokens] == [False, False, True, True, True]
    assert introspect(app, tokens[0])["active"] is True  # verified again, not refused
