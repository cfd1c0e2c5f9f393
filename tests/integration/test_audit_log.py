"""The audit log is complete (issue 5) and shaped per CONTRACT §5: every security-relevant
action done through HTTP leaves its event, readable at GET /admin/audit, with the request's
id and client IP, and never a secret value."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from authserver import endpoints
from tests.support.browser import (
    PASSWORD,
    authorization_params,
    decide,
    exchange,
    get_code,
    make_person,
    make_rp,
    pkce_pair,
    refresh,
    sign_in,
)
from tests.support.factories import admin_token, basic_auth, bearer, make_client

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
FIELDS = {"id", "time", "type", "outcome", "actor", "client_id", "ip", "request_id", "details"}
ACTOR = re.compile(r"^(client:[A-Za-z0-9_-]+|user:[A-Za-z0-9_-]+|system)$")


class Journal:
    """What the scenario did: each action's request id, and every secret value it saw."""

    def __init__(self):
        self.request_ids: dict[str, set[str]] = {}
        self.secrets: set[str] = set()

    def saw(self, event_type: str, response) -> None:
        self.request_ids.setdefault(event_type, set()).add(response.headers["X-Request-ID"])

    def secret(self, *values) -> None:
        self.secrets.update(v for v in values if v)


def _all_events(client, token: str) -> list[dict]:
    items, cursor = [], None
    while True:
        query = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        response = client.get("/admin/audit", query_string=query, headers=bearer(token))
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        items += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            return items


def _browser_flow(app, journal: Journal, browser) -> None:
    """Sign-in failure and success, consent granted and denied, code, refresh, replays."""
    make_person(app, "alice")
    journal.secret(PASSWORD)
    journal.saw("login.failed", sign_in(browser, "alice", "wrong password"))
    journal.secret("wrong password")
    journal.saw("login.succeeded", sign_in(browser, "alice"))

    rp, rp_secret = make_rp(app)
    journal.secret(rp_secret)
    verifier, challenge = pkce_pair()
    page = browser.get("/oauth2/authorize", query_string=authorization_params(rp, challenge))
    denied = decide(browser, page, "deny")
    journal.saw("consent.denied", denied)

    code, verifier, _ = get_code(browser, rp)  # consents: consent.granted
    journal.secret(code, verifier)
    tokens = exchange(browser, rp, rp_secret, code, verifier)
    assert tokens.status_code == 200, tokens.get_json()
    body = tokens.get_json()
    journal.secret(body["access_token"], body["refresh_token"], body["id_token"])
    journal.saw("token.issued", tokens)
    replay = exchange(browser, rp, rp_secret, code, verifier)
    assert replay.status_code == 400
    journal.saw("authorization_code.replayed", replay)

    code, verifier, _ = get_code(browser, rp)
    journal.secret(code, verifier)
    body = exchange(browser, rp, rp_secret, code, verifier).get_json()
    journal.secret(body["access_token"], body["refresh_token"])
    refreshed = refresh(browser, rp, rp_secret, body["refresh_token"])
    assert refreshed.status_code == 200
    journal.secret(refreshed.get_json()["access_token"], refreshed.get_json()["refresh_token"])
    journal.saw("token.issued", refreshed)
    reuse = refresh(browser, rp, rp_secret, body["refresh_token"])
    assert reuse.status_code == 400
    journal.saw("refresh_token.reuse_detected", reuse)

    revoked = browser.post(endpoints.REVOCATION, data={"token": refreshed.get_json()[
        "refresh_token"]}, headers=basic_auth(rp["client_id"], rp_secret))
    assert revoked.status_code == 200
    # The family was already revoked by the reuse: revoke a live access token instead too.
    cc, cc_secret = make_client(app, scope="read", default_scope="read")
    journal.secret(cc_secret)
    issued = browser.post(endpoints.TOKEN, data={"grant_type": "client_credentials"},
                          headers=basic_auth(cc["client_id"], cc_secret))
    journal.secret(issued.get_json()["access_token"])
    revoked = browser.post(endpoints.REVOCATION, data={"token": issued.get_json()[
        "access_token"]}, headers=basic_auth(cc["client_id"], cc_secret))
    journal.saw("token.revoked", revoked)
    bad_secret = browser.post(endpoints.TOKEN, data={"grant_type": "client_credentials"},
                              headers=basic_auth(cc["client_id"], "not-the-secret"))
    assert bad_secret.status_code == 401
    journal.saw("client.auth_failed", bad_secret)


def _admin_actions(app, journal: Journal, api, token: str) -> None:
    created = api.post("/admin/clients", headers=bearer(token), json={
        "client_name": "audited", "grant_types": ["client_credentials"], "scope": "read"})
    assert created.status_code == 201, created.get_json()
    client_id = created.get_json()["client_id"]
    journal.secret(created.get_json()["client_secret"])
    journal.saw("client.created", created)
    journal.saw("client.updated", api.patch(f"/admin/clients/{client_id}", headers=bearer(
        token), json={"client_name": "audited, renamed"}))
    rotated = api.post(f"/admin/clients/{client_id}/secret", headers=bearer(token))
    journal.secret(rotated.get_json()["client_secret"])
    journal.saw("client.secret_rotated", rotated)
    journal.saw("client.deleted", api.delete(f"/admin/clients/{client_id}",
                                             headers=bearer(token)))

    user = api.post("/admin/users", headers=bearer(token), json={
        "username": "bob", "password": "bob's long passphrase", "email": "bob@example.test"})
    assert user.status_code == 201, user.get_json()
    journal.secret("bob's long passphrase")
    journal.saw("user.created", user)
    journal.saw("user.deleted", api.delete(f"/admin/users/{user.get_json()['id']}",
                                           headers=bearer(token)))
    journal.saw("key.rotated", api.post("/admin/keys/rotate", headers=bearer(token)))
    refused = api.get("/admin/clients", headers=bearer("not-a-token"))
    assert refused.status_code == 401
    journal.saw("admin.auth_failed", refused)


def _lockout(app, journal: Journal, browser) -> None:
    make_person(app, "carol", email="carol@example.test")
    for _ in range(2):
        response = sign_in(browser, "carol", "guess")
    journal.saw("login.locked_out", response)
    journal.saw("ratelimit.exceeded", sign_in(browser, "carol", "guess"))


@pytest.mark.settings(ratelimit_login="2/minute")
def test_every_security_event_is_on_record_with_its_request_and_no_secret(app):
    journal = Journal()
    token = admin_token(app)
    journal.secret(token)
    _browser_flow(app, journal, app.test_client())
    _admin_actions(app, journal, app.test_client(), token)
    _lockout(app, journal, app.test_client())

    events = _all_events(app.test_client(), token)
    by_type: dict[str, list[dict]] = {}
    for event in events:
        by_type.setdefault(event["type"], []).append(event)

    expected = set(journal.request_ids) | {"consent.granted"}
    missing = expected - set(by_type)
    assert not missing, f"no audit event of type {sorted(missing)}"
    for event_type, request_ids in journal.request_ids.items():
        seen = {e["request_id"] for e in by_type[event_type]}
        assert request_ids <= seen, (event_type, request_ids, seen)
    refresh_grants = [e for e in by_type["token.issued"]
                      if e["details"].get("grant_type") == "refresh_token"]
    assert refresh_grants, "a refresh is audited as token.issued with grant_type refresh_token"

    for event in events:
        assert set(event) == FIELDS, event
        assert RFC3339.match(event["time"]) and datetime.fromisoformat(event["time"])
        assert re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", event["type"])
        assert event["outcome"] in ("success", "failure"), event
        assert ACTOR.match(event["actor"]), event
        assert event["ip"] == "127.0.0.1" or event["ip"] is None, event
        assert isinstance(event["details"], dict)
    failures = {"login.failed", "login.locked_out", "ratelimit.exceeded", "admin.auth_failed",
                "client.auth_failed", "refresh_token.reuse_detected",
                "authorization_code.replayed"}
    for event_type in failures:
        assert {e["outcome"] for e in by_type[event_type]} == {"failure"}, event_type

    text = repr(events)
    leaked = sorted(s for s in journal.secrets if len(s) >= 6 and s in text)
    assert not leaked, f"secret values in the audit log: {[s[:8] + '…' for s in leaked]}"
