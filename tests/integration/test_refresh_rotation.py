"""Refresh tokens: rotation on every use, reuse detection revoking the family (RFC 9700
§4.14.2), scope narrowing (RFC 6749 §6); concurrent uses of one token or code."""

from __future__ import annotations

import threading

import jwt

from authserver import clock
from authserver.extensions import services
from authserver.models import RefreshToken
from tests.support.browser import (
    audit_events,
    exchange,
    get_code,
    introspect,
    make_person,
    make_rp,
    refresh,
    sign_in,
    signed_in_tokens,
)
from tests.support.factories import make_client


def _error(response) -> str:
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()["error"]


def test_each_refresh_rotates_the_refresh_token(app, client):
    rp, secret, first = signed_in_tokens(app, client)
    second = refresh(client, rp, secret, first["refresh_token"])
    assert second.status_code == 200, second.get_json()
    body = second.get_json()
    assert body["refresh_token"] != first["refresh_token"]
    assert body["access_token"] != first["access_token"]
    assert body["scope"] == first["scope"]
    third = refresh(client, rp, secret, body["refresh_token"])
    assert third.status_code == 200
    creds = (rp["client_id"], secret)
    assert introspect(app, third.get_json()["refresh_token"], creds)["active"] is True
    assert introspect(app, body["refresh_token"], creds)["active"] is False  # spent


def test_refresh_tokens_are_stored_as_digests(app, client):
    _, _, body = signed_in_tokens(app, client)
    with services(app).session_factory() as db:
        rows = db.query(RefreshToken).all()
    assert len(rows) == 1 and body["refresh_token"] not in rows[0].token_digest


def test_reuse_of_a_spent_token_revokes_the_whole_family(app, client):
    rp, secret, first = signed_in_tokens(app, client)
    second = refresh(client, rp, secret, first["refresh_token"]).get_json()
    reuse = refresh(client, rp, secret, first["refresh_token"])
    assert reuse.status_code == 400 and _error(reuse) == "invalid_grant"
    creds = (rp["client_id"], secret)
    # The newest refresh token and every access token of the family are dead now.
    assert introspect(app, second["refresh_token"], creds) == {"active": False}
    assert introspect(app, second["access_token"])["active"] is False
    assert introspect(app, first["access_token"])["active"] is False
    after = refresh(client, rp, secret, second["refresh_token"])
    assert _error(after) == "invalid_grant"
    (event,) = audit_events(app, "refresh_token.reuse_detected")
    assert event.client_id == rp["client_id"] and event.outcome == "failure"
    assert second["refresh_token"] not in event.details


def test_refresh_keeps_the_scope_or_narrows_it(app, client):
    rp, secret, first = signed_in_tokens(app, client)
    narrowed = refresh(client, rp, secret, first["refresh_token"], scope="openid email")
    assert narrowed.status_code == 200 and narrowed.get_json()["scope"] == "email openid"
    # The rotated refresh token keeps the original grant (RFC 6749 §6).
    again = refresh(client, rp, secret, narrowed.get_json()["refresh_token"])
    assert again.get_json()["scope"] == first["scope"]
    wider = refresh(client, rp, secret, again.get_json()["refresh_token"],
                    scope="openid offline_access")
    assert wider.status_code == 400 and _error(wider) == "invalid_scope"


def test_a_refresh_token_works_only_for_its_client(app, client):
    rp, secret, first = signed_in_tokens(app, client)
    other, other_secret = make_client(app, client_name="other",
                                      grant_types=["authorization_code", "refresh_token"])
    stolen = refresh(client, other, other_secret, first["refresh_token"])
    assert _error(stolen) == "invalid_grant"
    assert refresh(client, rp, secret, first["refresh_token"]).status_code == 200


def test_an_expired_refresh_token_is_refused(app, client):
    rp, secret, first = signed_in_tokens(app, client, refresh_token_ttl=60)
    clock.travel(61)
    assert _error(refresh(client, rp, secret, first["refresh_token"])) == "invalid_grant"


def test_refresh_for_a_deleted_user_is_refused(app, client):
    from authserver.admin import users

    rp, secret, first = signed_in_tokens(app, client)
    sub = jwt.decode(first["access_token"], options={"verify_signature": False})["sub"]
    with services(app).session_factory() as db:
        users.delete_user(db, sub, actor="system")
    assert _error(refresh(client, rp, secret, first["refresh_token"])) == "invalid_grant"


def test_refreshed_id_token_keeps_subject_and_auth_time(app, client):
    rp, secret, first = signed_in_tokens(app, client)
    clock.travel(30)
    body = refresh(client, rp, secret, first["refresh_token"]).get_json()
    old = jwt.decode(first["id_token"], options={"verify_signature": False})
    new = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert new["sub"] == old["sub"] and new["auth_time"] == old["auth_time"]
    assert new["aud"] == rp["client_id"] and new["iat"] > old["iat"]


def test_revoking_a_refresh_token_kills_its_family(app, client):
    from tests.support.factories import basic_auth

    rp, secret, first = signed_in_tokens(app, client)
    response = client.post("/oauth2/revoke", data={"token": first["refresh_token"]},
                           headers=basic_auth(rp["client_id"], secret))
    assert response.status_code == 200
    assert _error(refresh(client, rp, secret, first["refresh_token"])) == "invalid_grant"
    assert introspect(app, first["access_token"])["active"] is False


def test_two_concurrent_uses_of_one_token_let_exactly_one_through(app, client):
    rp, secret, first = signed_in_tokens(app, client)
    barrier, results = threading.Barrier(2), []

    def use():
        barrier.wait()
        results.append(refresh(app.test_client(), rp, secret, first["refresh_token"]))

    threads = [threading.Thread(target=use) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r.status_code for r in results) == [200, 400]
    # The loser looks exactly like a thief: the family is revoked (RFC 9700 §4.14.2).
    winner = next(r for r in results if r.status_code == 200).get_json()
    assert introspect(app, winner["refresh_token"], (rp["client_id"], secret))["active"] \
        is False


def test_two_concurrent_code_exchanges_issue_once(app, client):
    make_person(app, "dave")
    rp, secret = make_rp(app, skip_consent=True)
    sign_in(client, "dave")
    code, verifier, _ = get_code(client, rp)
    barrier, results = threading.Barrier(2), []

    def use():
        barrier.wait()
        results.append(exchange(app.test_client(), rp, secret, code, verifier))

    threads = [threading.Thread(target=use) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r.status_code for r in results) == [200, 400]
    winner = next(r for r in results if r.status_code == 200).get_json()
    assert introspect(app, winner["access_token"])["active"] is False  # revoked by the replay
