"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at end_session_endpoint."""

from __future__ import annotations

import json

from authserver.extensions import services
from authserver.models import BrowserSession
from authserver.oidc.sessions import COOKIE_NAME
from tests.support.browser import (
    audit_events,
    authorization_params,
    csrf_token,
    exchange,
    get_code,
    hidden_fields,
    introspect,
    pkce_pair,
    query_of,
    refresh,
    session_cookie,
    sign_in,
    signed_in_rp,
    signed_in_tokens,
)

BYE = "https://rp.example.test/bye"


def _sessions(app):
    with services(app).session_factory() as db:
        return db.query(BrowserSession).all()


def _prompt_none(client, rp) -> dict:
    _, challenge = pkce_pair()
    response = client.get("/oauth2/authorize",
                          query_string=authorization_params(rp, challenge, prompt="none"))
    return query_of(response.headers["Location"])


def test_logout_with_id_token_hint_redirects_to_the_registered_uri(app, client):
    rp, _, body = signed_in_tokens(app, client, post_logout_redirect_uris=[BYE])
    response = client.get("/oauth2/logout", query_string={
        "id_token_hint": body["id_token"], "post_logout_redirect_uri": BYE, "state": "s1"})
    assert response.status_code == 303
    assert response.headers["Location"] == BYE + "?state=s1"
    cleared = [c for c in response.headers.getlist("Set-Cookie")
               if c.startswith(COOKIE_NAME + "=")]
    assert cleared and "Expires=Thu, 01 Jan 1970" in cleared[0]
    (record,) = _sessions(app)
    assert record.ended_at is not None
    (event,) = audit_events(app, "session.ended")
    assert '"reason":"logout"' in event.details
    assert _prompt_none(client, rp)["error"] == "login_required"


def test_logout_without_a_hint_asks_for_confirmation(app, client):
    signed_in_tokens(app, client)
    page = client.get("/oauth2/logout")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Sign out?" in html
    assert 'name="decision" value="logout"' in html
    assert _sessions(app)[0].ended_at is None  # nothing happened yet
    done = client.post("/oauth2/logout", data={**hidden_fields(html), "decision": "logout"})
    assert done.status_code == 200 and "You are signed out" in done.get_data(as_text=True)
    assert _sessions(app)[0].ended_at is not None


def test_confirmation_post_without_csrf_changes_nothing(app, client):
    signed_in_tokens(app, client)
    client.get("/oauth2/logout")
    response = client.post("/oauth2/logout", data={"decision": "logout"})
    assert response.status_code == 400
    assert _sessions(app)[0].ended_at is None and session_cookie(client)


def test_stay_keeps_the_session(app, client):
    signed_in_tokens(app, client)
    page = client.get("/oauth2/logout").get_data(as_text=True)
    response = client.post("/oauth2/logout", data={"csrf_token": csrf_token(page),
                                                    "decision": "stay"})
    assert response.status_code == 200 and _sessions(app)[0].ended_at is None


def test_an_expired_id_token_hint_is_still_accepted(app, client):
    from authserver import clock

    _, _, body = signed_in_tokens(app, client, post_logout_redirect_uris=[BYE])
    clock.travel(services(app).settings.id_token_ttl + 60)
    response = client.get("/oauth2/logout", query_string={
        "id_token_hint": body["id_token"], "post_logout_redirect_uri": BYE})
    assert response.status_code == 303 and response.headers["Location"] == BYE


def test_logout_without_a_session_still_returns_to_the_client(app, client):
    rp, _, _ = signed_in_tokens(app, client, post_logout_redirect_uris=[BYE])
    client.delete_cookie(COOKIE_NAME)
    response = client.get("/oauth2/logout", query_string={
        "client_id": rp["client_id"], "post_logout_redirect_uri": BYE})
    assert response.status_code == 303 and response.headers["Location"] == BYE


def test_a_hint_for_someone_else_needs_confirmation(app, client):
    from tests.support.browser import make_person

    _, _, body = signed_in_tokens(app, client, post_logout_redirect_uris=[BYE])
    make_person(app, "bob")
    sign_in(client, "bob")
    response = client.get("/oauth2/logout", query_string={
        "id_token_hint": body["id_token"], "post_logout_redirect_uri": BYE})
    assert response.status_code == 200 and "Sign out?" in response.get_data(as_text=True)


# -- what a logout revokes (OIDC Core §11: only offline grants outlive the session) ------------

def _logout(client, id_token: str):
    response = client.get("/oauth2/logout", query_string={
        "id_token_hint": id_token, "post_logout_redirect_uri": BYE})
    assert response.status_code == 303, response.get_data(as_text=True)[:300]


def _tokens(app, client, rp, secret, scope: str = "openid profile email") -> dict:
    code, verifier, _ = get_code(client, rp, scope=scope)
    response = exchange(client, rp, secret, code, verifier)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_logout_revokes_the_sessions_refresh_tokens_and_their_access_tokens(app, client):
    rp, secret, body = signed_in_tokens(app, client, post_logout_redirect_uris=[BYE])
    assert introspect(app, body["access_token"])["active"] is True
    _logout(client, body["id_token"])
    refused = refresh(client, rp, secret, body["refresh_token"])
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_grant"
    assert introspect(app, body["access_token"])["active"] is False
    assert introspect(app, body["refresh_token"], (rp["client_id"], secret))["active"] is False
    (event,) = audit_events(app, "session.ended")
    assert json.loads(event.details)["refresh_families_revoked"] == 1


def test_an_offline_access_grant_outlives_the_logout(app, client):
    rp, secret = signed_in_rp(app, client, post_logout_redirect_uris=[BYE])
    offline = _tokens(app, client, rp, secret, scope="openid offline_access")
    online = _tokens(app, client, rp, secret)
    _logout(client, online["id_token"])
    assert refresh(client, rp, secret, online["refresh_token"]).status_code == 400
    kept = refresh(client, rp, secret, offline["refresh_token"])
    assert kept.status_code == 200, kept.get_json()
    assert introspect(app, offline["access_token"])["active"] is True
    (event,) = audit_events(app, "session.ended")
    assert json.loads(event.details)["refresh_families_revoked"] == 1


def test_a_logout_leaves_the_grants_of_the_persons_other_sessions(app, client):
    rp, secret = signed_in_rp(app, client, post_logout_redirect_uris=[BYE])
    here = _tokens(app, client, rp, secret)
    other_browser = app.test_client()
    sign_in(other_browser)
    there = _tokens(app, other_browser, rp, secret)
    _logout(client, here["id_token"])
    assert refresh(client, rp, secret, here["refresh_token"]).status_code == 400
    kept = refresh(other_browser, rp, secret, there["refresh_token"])
    assert kept.status_code == 200, kept.get_json()
