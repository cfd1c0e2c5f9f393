"""Attacks on the authorization code flow, each shown failing (CONTRACT §4, RFC 9700 §4)."""

from __future__ import annotations

import pytest

from tests.support.browser import (
    audit_events,
    authorization_params,
    exchange,
    get_code,
    introspect,
    make_person,
    make_rp,
    pkce_pair,
    query_of,
    refresh,
    sign_in,
)

ATTACKER = "https://attacker.example/cb"


@pytest.fixture(params=["confidential", "public"])
def rp(request, app, client):
    make_person(app)
    method = "client_secret_basic" if request.param == "confidential" else "none"
    rp, secret = make_rp(app, skip_consent=True, token_endpoint_auth_method=method)
    sign_in(client)
    return rp, secret


@pytest.mark.parametrize("pkce", [
    {"code_challenge": None, "code_challenge_method": None},
    {"code_challenge_method": None},  # means plain (RFC 7636 §4.3)
    {"code_challenge_method": "plain"},
    {"code_challenge_method": "S512"},
    {"code_challenge": "too-short"},
])
def test_pkce_plain_or_missing_is_refused_for_every_client(client, rp, pkce):
    rp, _ = rp
    _, challenge = pkce_pair()
    params = authorization_params(rp, challenge, **pkce)
    response = client.get("/oauth2/authorize", query_string=params)
    assert response.status_code == 302
    query = query_of(response.headers["Location"])
    assert query["error"] == "invalid_request" and "code" not in query


def test_wrong_or_missing_code_verifier_is_refused(client, rp):
    rp, secret = rp
    code, verifier, _ = get_code(client, rp)
    other_verifier, _ = pkce_pair()
    wrong = exchange(client, rp, secret, code, other_verifier)
    assert wrong.status_code == 400 and wrong.get_json()["error"] == "invalid_grant"
    missing = exchange(client, rp, secret, code, None)
    assert missing.status_code == 400 and missing.get_json()["error"] == "invalid_request"
    assert "access_token" not in wrong.get_json() | missing.get_json()
    # The failed attempts did not burn the code for its owner.
    assert exchange(client, rp, secret, code, verifier).status_code == 200


def test_code_replay_is_refused_and_revokes_what_the_first_exchange_issued(app, client, rp):
    rp, secret = rp
    code, verifier, _ = get_code(client, rp)
    first = exchange(client, rp, secret, code, verifier).get_json()
    replay = exchange(client, rp, secret, code, verifier)
    assert replay.status_code == 400 and replay.get_json()["error"] == "invalid_grant"
    assert "access_token" not in replay.get_json()
    assert introspect(app, first["access_token"])["active"] is False
    assert refresh(client, rp, secret, first["refresh_token"]).get_json()["error"] \
        == "invalid_grant"
    (event,) = audit_events(app, "authorization_code.replayed")
    assert event.client_id == rp["client_id"] and code not in event.details


def test_a_code_is_bound_to_its_client(app, client, rp):
    rp, secret = rp
    code, verifier, _ = get_code(client, rp)
    other, other_secret = make_rp(app, client_name="Other")
    stolen = exchange(client, other, other_secret, code, verifier)
    assert stolen.status_code == 400 and stolen.get_json()["error"] == "invalid_grant"
    assert exchange(client, rp, secret, code, verifier).status_code == 200


@pytest.mark.parametrize("redirect_uri", [
    ATTACKER,
    "https://rp.example.test/callback/",           # trailing slash
    "https://rp.example.test/callback?x=1",        # extra query
    "https://RP.example.test/callback",            # case
    "https://rp.example.test:443/callback",        # explicit port
    "https://rp.example.test/callback#frag",
    "",
])
def test_redirect_uri_mismatch_is_shown_never_redirected(client, rp, redirect_uri):
    rp, _ = rp
    _, challenge = pkce_pair()
    params = authorization_params(rp, challenge, redirect_uri=redirect_uri)
    response = client.get("/oauth2/authorize", query_string=params)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert response.headers["Content-Type"].startswith("text/html")
    assert "attacker" not in response.get_data(as_text=True)


def test_loopback_port_exception_is_not_applied(app, client):
    make_person(app)
    rp, _ = make_rp(app, redirect_uris=["http://127.0.0.1:8765/cb"], skip_consent=True)
    sign_in(client)
    _, challenge = pkce_pair()
    params = authorization_params(rp, challenge, redirect_uri="http://127.0.0.1:9999/cb")
    response = client.get("/oauth2/authorize", query_string=params)
    assert response.status_code == 400 and "Location" not in response.headers


@pytest.mark.parametrize("client_id", ["unknown-client", None, "x" * 500])
def test_unknown_client_is_shown_never_redirected(client, client_id):
    params = {"response_type": "code", "redirect_uri": ATTACKER, "state": "s"}
    if client_id:
        params["client_id"] = client_id
    response = client.get("/oauth2/authorize", query_string=params)
    assert response.status_code == 400 and "Location" not in response.headers


def test_duplicated_redirect_uri_is_shown_never_redirected(client, rp):
    rp, _ = rp
    _, challenge = pkce_pair()
    params = authorization_params(rp, challenge)
    query = "&".join(f"{k}={v}" for k, v in params.items() if k != "redirect_uri")
    response = client.get(f"/oauth2/authorize?{query}&redirect_uri={rp['redirect_uris'][0]}"
                          f"&redirect_uri={ATTACKER}")
    assert response.status_code == 400 and "Location" not in response.headers


def test_prompt_none_without_a_session_is_login_required(app, client):
    rp, _ = make_rp(app)
    _, challenge = pkce_pair()
    params = authorization_params(rp, challenge, prompt="none")
    response = client.get("/oauth2/authorize", query_string=params)
    query = query_of(response.headers["Location"])
    assert response.headers["Location"].startswith(rp["redirect_uris"][0])
    assert query["error"] == "login_required" and query["state"] == params["state"]
