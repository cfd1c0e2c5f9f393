"""IntrospectionVerifier against a real local RFC 7662 endpoint."""

from __future__ import annotations

import time

import pytest
from flask import Flask, jsonify

from authserver.verifier import (
    ConfigurationError,
    InsufficientScope,
    IntrospectionUnavailable,
    IntrospectionVerifier,
    InvalidToken,
    current_claims,
    require_scope,
)
from tests.support.jwks_server import INTROSPECTION_CLIENT, FakeClock, IssuerStub

CLIENT_ID, CLIENT_SECRET = INTROSPECTION_CLIENT


@pytest.fixture
def issuer():
    stub = IssuerStub()
    yield stub
    stub.stop()


@pytest.fixture
def clock():
    return FakeClock()


def make(stub, clock=None, **kwargs) -> IntrospectionVerifier:
    kwargs.setdefault("client_id", CLIENT_ID)
    kwargs.setdefault("client_secret", CLIENT_SECRET)
    if clock is not None:
        kwargs["clock"] = clock
    return IntrospectionVerifier(stub.issuer, stub.audience, **kwargs)


def active(stub, token: str, **claims) -> dict:
    now = int(time.time())
    answer = {"active": True, "iss": stub.issuer, "aud": stub.audience, "sub": "user-1",
              "client_id": "app", "scope": "orders:read", "token_type": "Bearer",
              "exp": now + 300, "iat": now, **claims}
    stub.introspection[token] = {k: v for k, v in answer.items() if v is not None}
    return stub.introspection[token]


def test_active_token_is_accepted_via_the_discovered_endpoint(issuer):
    answer = active(issuer, "opaque-token-1")
    assert make(issuer).verify("opaque-token-1", ["orders:read"]) == answer
    assert issuer.hits["/.well-known/openid-configuration"] == 1
    assert issuer.hits["/introspect"] == 1
    # client_secret_basic with form-urlencoded id and secret (RFC 6749 §2.3.1)
    assert issuer.last_headers["/introspect"]["Authorization"] == issuer.expected_basic()


def test_explicit_endpoint_skips_discovery(issuer):
    active(issuer, "t")
    make(issuer, introspection_endpoint=f"{issuer.issuer}/introspect").verify("t")
    assert issuer.hits["/.well-known/openid-configuration"] == 0


def test_inactive_and_unknown_tokens_are_refused(issuer):
    issuer.introspection["revoked"] = {"active": False}
    issuer.introspection["stringly"] = {"active": "true", "aud": issuer.audience}
    verifier = make(issuer)
    for token in ("revoked", "never-issued", "stringly"):
        with pytest.raises(InvalidToken, match="token inactive"):
            verifier.verify(token)


def test_positive_answers_are_cached_briefly_and_inactive_ones_never(issuer, clock):
    verifier = make(issuer, clock, cache_ttl=5)
    active(issuer, "t")
    verifier.verify("t")
    verifier.verify("t")
    assert issuer.hits["/introspect"] == 1
    issuer.introspection["t"] = {"active": False}  # revoked at the issuer
    clock.advance(5)
    with pytest.raises(InvalidToken, match="token inactive"):
        verifier.verify("t")
    with pytest.raises(InvalidToken, match="token inactive"):
        verifier.verify("t")
    assert issuer.hits["/introspect"] == 3


def test_without_cache_a_revocation_is_seen_at_once(issuer):
    verifier = make(issuer, cache_ttl=0)
    active(issuer, "t")
    verifier.verify("t")
    issuer.introspection["t"] = {"active": False}
    with pytest.raises(InvalidToken, match="token inactive"):
        verifier.verify("t")


def test_cache_never_outlives_the_token(issuer, clock):
    verifier = make(issuer, clock, cache_ttl=60)
    active(issuer, "t", exp=int(clock.now) + 2)
    verifier.verify("t")
    clock.advance(3)
    verifier.verify("t")  # within the leeway, but asked again: the cache ended at exp
    assert issuer.hits["/introspect"] == 2
    clock.advance(5)
    with pytest.raises(InvalidToken, match="token expired"):
        verifier.verify("t")


@pytest.mark.parametrize(("claims", "reason"), [
    ({"aud": "https://other.test"}, "wrong audience"),
    ({"aud": None}, "wrong audience"),
    ({"iss": "https://evil.test"}, "wrong issuer"),
    ({"token_type": "refresh_token"}, "not an access token"),
    ({"exp": 1000}, "token expired"),
])
def test_active_answers_must_still_be_for_this_api(issuer, claims, reason):
    active(issuer, "t", **claims)
    with pytest.raises(InvalidToken, match=reason):
        make(issuer).verify("t")


def test_missing_scope_is_insufficient_scope(issuer):
    active(issuer, "t", scope="profile")
    with pytest.raises(InsufficientScope):
        make(issuer).verify("t", ["orders:read"])


def test_wrong_client_credentials_or_outage_fail_closed_as_unavailable(issuer):
    active(issuer, "t")
    with pytest.raises(IntrospectionUnavailable) as info:
        make(issuer, client_secret="wrong").verify("t")
    assert info.value.status_code == 503
    verifier = make(issuer, cache_ttl=0)
    verifier.verify("t")
    issuer.stop()
    with pytest.raises(IntrospectionUnavailable):
        verifier.verify("t")


@pytest.mark.parametrize("token", ["", "a b", "tok\u00e9n", "x" * 20000])
def test_malformed_tokens_are_not_sent(issuer, token):
    with pytest.raises(InvalidToken, match="malformed token"):
        make(issuer).verify(token)
    assert issuer.hits["/introspect"] == 0


@pytest.mark.parametrize("kwargs", [{"cache_ttl": 61}, {"cache_ttl": -1}, {"client_secret": ""},
                                    {"introspection_endpoint": "http://example.test/i"}])
def test_unsafe_configuration_is_refused(issuer, kwargs):
    with pytest.raises(ConfigurationError):
        make(issuer, **kwargs)


def test_require_scope_works_with_introspection(issuer):
    verifier = make(issuer)
    app = Flask(__name__)

    @app.get("/orders")
    @require_scope(verifier, "orders:read")
    def orders():
        return jsonify(sub=current_claims()["sub"])

    active(issuer, "good")
    active(issuer, "narrow", scope="profile")
    client = app.test_client()
    assert client.get("/orders", headers={"Authorization": "Bearer good"}).json == {
        "sub": "user-1"}
    assert client.get("/orders", headers={"Authorization": "Bearer narrow"}).status_code == 403
    gone = client.get("/orders", headers={"Authorization": "Bearer gone"})
    assert gone.status_code == 401 and gone.json["error_description"] == "token inactive"
