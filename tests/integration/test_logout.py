"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at end_session_endpoint."""

from __future__ import annotations

from authserver.extensions import services
from authserver.models import BrowserSession
from authserver.oidc.sessions import COOKIE_NAME
from tests.support.browser import (
    audit_events,
    authorization_params,
    csrf_token,
    hidden_fields,
    pkce_pair,
    query_of,
    session_cookie,
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
    from tests.support.browser import make_person, sign_in

    _, _, body = signed_in_tokens(app, client, post_logout_redirect_uris=[BYE])
    make_person(app, "bob")
    sign_in(client, "bob")
    response = client.get("/oauth2/logout", query_string={
        "id_token_hint": body["id_token"], "post_logout_redirect_uri": BYE})
    assert response.status_code == 200 and "Sign out?" in response.get_data(as_text=True)
