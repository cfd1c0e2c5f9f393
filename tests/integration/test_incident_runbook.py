"""The incident runbook (README): each step through the admin API and the CLI, each audited.

- signing key compromised: gone from the JWKS at once, a new key signs at once, every token
  it signed introspects inactive;
- client compromised: its tokens and refresh families die, its secret can be rotated with it;
- user compromised: browser sessions end, refresh families and access tokens die.
"""

from __future__ import annotations

import json
import time

import jwt
import pytest

from authserver import endpoints
from authserver.models import AuditEvent, BrowserSession
from tests.support import cli
from tests.support.browser import introspect, refresh, signed_in_tokens
from tests.support.factories import (
    admin_token,
    basic_auth,
    bearer,
    client_credentials_token,
    make_client,
)


def _events(app, type_: str) -> list[AuditEvent]:
    with app.extensions["authserver"].session_factory() as db:
        return list(db.query(AuditEvent).filter(AuditEvent.type == type_)
                    .order_by(AuditEvent.seq))


def _jwks_kids(client) -> set[str]:
    return {k["kid"] for k in client.get(endpoints.JWKS).get_json()["keys"]}


def _next_second():
    """Revocation cut-offs compare whole-second iat: mint the next token a second later."""
    time.sleep(1.05 - (time.time() % 1))


def _cc_client(app):
    body, secret = make_client(app, client_name="svc", scope="read", default_scope="read")
    return body["client_id"], secret


def test_revoking_the_active_signing_key_over_the_admin_api(app, client):
    cid, secret = _cc_client(app)
    victim_token = client_credentials_token(app, cid, secret)
    kid = jwt.get_unverified_header(victim_token)["kid"]
    assert introspect(app, victim_token)["active"] is True
    before = {k["kid"]: k for k in client.get(
        "/admin/keys", headers=bearer(admin_token(app))).get_json()["items"]}
    pending = next(k for k, v in before.items()
                   if v["state"] == "pending" and v["alg"] == before[kid]["alg"])

    response = client.post(f"/admin/keys/{kid}/revoke", headers=bearer(admin_token(app)))
    assert response.status_code == 200, response.get_json()
    result = response.get_json()
    assert result["kid"] == kid and result["previous_state"] == "active"
    assert result["promoted"] == pending and result["pending"] not in before

    kids = _jwks_kids(client)
    assert kid not in kids and {pending, result["pending"]} <= kids
    assert introspect(app, victim_token) == {"active": False}
    fresh = client_credentials_token(app, cid, secret)
    assert jwt.get_unverified_header(fresh)["kid"] == pending
    assert introspect(app, fresh)["active"] is True
    (event,) = _events(app, "key.revoked")
    assert event.actor.startswith("client:")
    assert json.loads(event.details)["kid"] == kid
    assert client.post("/admin/keys/no-such-kid/revoke",
                       headers=bearer(admin_token(app))).status_code == 404


def test_revoking_a_key_from_the_cli(app, client, settings):
    assert client.get("/readyz").status_code == 200  # the app has made its first keys
    keys = json.loads(cli.run(settings, "keys", "list", "--json").stdout)["items"]
    rs_active = next(k for k in keys if k["alg"] == "RS256" and k["state"] == "active")
    out = json.loads(cli.run(settings, "keys", "revoke", "--", rs_active["kid"]).stdout)
    assert out["previous_state"] == "active" and out["promoted"]
    app.extensions["authserver"].keyset.refresh(force=True)  # instances do this within 2 s
    assert rs_active["kid"] not in _jwks_kids(client)
    states = {k["kid"]: k["state"] for k in json.loads(
        cli.run(settings, "keys", "list", "--json").stdout)["items"]}
    assert states[out["promoted"]] == "active" and states[out["pending"]] == "pending"
    assert [json.loads(e.details)["kid"] for e in _events(app, "key.revoked")] == \
        [rs_active["kid"]]
    missing = cli.run(settings, "keys", "revoke", "nope", check=False)
    assert missing.returncode == 2 and "no signing key" in missing.stderr
    # Thumbprint kids may start with "-": the argument, not an option (no `--` needed).
    dashed = cli.run(settings, "keys", "revoke", "-Xq3", check=False)
    assert dashed.returncode == 2 and "no signing key '-Xq3'" in dashed.stderr, dashed.stderr
    assert cli.run(settings, "audit", "verify").returncode == 0


def test_exported_public_jwks_matches_the_served_one_and_holds_no_private_parts(
        app, client, settings):
    assert client.get("/readyz").status_code == 200  # the app has made its first keys
    exported = json.loads(cli.run(settings, "keys", "export-public").stdout)
    served = client.get(endpoints.JWKS).get_json()
    assert sorted(k["kid"] for k in exported["keys"]) == sorted(k["kid"] for k in served["keys"])
    for key in exported["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)


def test_client_compromise_revokes_its_tokens_and_families_and_rotates_the_secret(app, client):
    rp, secret, tokens = signed_in_tokens(app, client)
    cc_token = client_credentials_token(app, *_cc_client(app))  # another client: unaffected
    assert introspect(app, tokens["access_token"])["active"] is True

    response = client.post(f"/admin/clients/{rp['client_id']}/revoke-tokens",
                           json={"rotate_secret": True}, headers=bearer(admin_token(app)))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["refresh_families_revoked"] == 1 and body["client_secret"] != secret

    assert introspect(app, tokens["access_token"]) == {"active": False}
    assert introspect(app, tokens["refresh_token"],
                      as_client=(rp["client_id"], body["client_secret"])) == {"active": False}
    assert refresh(client, rp, body["client_secret"], tokens["refresh_token"]).status_code == 400
    assert refresh(client, rp, secret, tokens["refresh_token"]).status_code == 401  # old secret
    assert introspect(app, cc_token)["active"] is True
    (event,) = _events(app, "client.tokens_revoked")
    assert event.client_id == rp["client_id"]
    assert [e.client_id for e in _events(app, "client.secret_rotated")] == [rp["client_id"]]
    assert "client_secret" not in event.details

    # a public or private_key_jwt client has no secret to rotate: refused, nothing done
    public, _ = make_client(app, client_name="spa", token_endpoint_auth_method="none",
                            grant_types=["authorization_code"])
    refused = client.post(f"/admin/clients/{public['client_id']}/revoke-tokens",
                          json={"rotate_secret": True}, headers=bearer(admin_token(app)))
    assert refused.status_code == 400
    assert len(_events(app, "client.tokens_revoked")) == 1
    assert client.post("/admin/clients/nope/revoke-tokens",
                       headers=bearer(admin_token(app))).status_code == 404
    assert client.post(f"/admin/clients/{public['client_id']}/revoke-tokens",
                       json={"extra": 1}, headers=bearer(admin_token(app))).status_code == 400


def test_client_compromise_from_the_cli_and_new_tokens_work_afterwards(app, settings):
    cid, secret = _cc_client(app)
    old = client_credentials_token(app, cid, secret)
    out = json.loads(cli.run(settings, "clients", "revoke-tokens", cid).stdout)
    assert out["client_id"] == cid and "client_secret" not in out
    assert introspect(app, old) == {"active": False}
    _next_second()
    new = client_credentials_token(app, cid, secret)  # same secret: not rotated
    assert introspect(app, new)["active"] is True
    rotated = json.loads(cli.run(settings, "clients", "revoke-tokens", cid,
                                 "--rotate-secret").stdout)
    assert introspect(app, new) == {"active": False}
    response = app.test_client().post(endpoints.TOKEN, data={"grant_type": "client_credentials"},
                                      headers=basic_auth(cid, secret))
    assert response.status_code == 401
    client_credentials_token(app, cid, rotated["client_secret"])
    assert len(_events(app, "client.tokens_revoked")) == 2
    assert cli.run(settings, "clients", "revoke-tokens", "nope", check=False).returncode == 2


@pytest.mark.parametrize("via", ["admin_api", "cli"])
def test_user_compromise_ends_sessions_and_revokes_everything(app, client, settings, via):
    rp, secret, tokens = signed_in_tokens(app, client)
    with app.extensions["authserver"].session_factory() as db:
        (browser_session,) = db.query(BrowserSession).all()
        user_id = browser_session.user_id

    if via == "admin_api":
        response = client.post(f"/admin/users/{user_id}/revoke",
                               headers=bearer(admin_token(app)))
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
    else:
        body = json.loads(cli.run(settings, "users", "revoke", user_id).stdout)
    assert body["sessions_ended"] == 1 and body["refresh_families_revoked"] == 1

    with app.extensions["authserver"].session_factory() as db:
        assert db.get(BrowserSession, browser_session.id).ended_at is not None
    assert introspect(app, tokens["access_token"]) == {"active": False}
    assert refresh(client, rp, secret, tokens["refresh_token"]).status_code == 400
    # the browser is signed out: the authorization endpoint asks for a login again
    page = client.get(endpoints.AUTHORIZATION, query_string={
        "response_type": "code", "client_id": rp["client_id"],
        "redirect_uri": rp["redirect_uris"][0], "scope": "openid",
        "code_challenge": "x" * 43, "code_challenge_method": "S256"})
    assert 'name="password"' in page.get_data(as_text=True) or \
        "login" in page.headers.get("Location", "")
    (event,) = _events(app, "user.tokens_revoked")
    assert json.loads(event.details)["user_id"] == user_id
    assert event.actor == ("system" if via == "cli" else event.actor)
    assert client.post("/admin/users/nope/revoke",
                       headers=bearer(admin_token(app))).status_code == 404
