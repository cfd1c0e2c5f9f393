"""Rate limits (CONTRACT §2, §4): login per (username, IP) and per IP, token and introspection
per client, admin API per caller; 429 with Retry-After, JSON on APIs and a page on forms."""

from __future__ import annotations

import pytest

from authserver import endpoints
from tests.support.browser import PASSWORD, audit_events, make_person, sign_in
from tests.support.factories import admin_token, basic_auth, bearer, make_client

WRONG = "not the password"


def _assert_429_page(response, window: int) -> None:
    assert response.status_code == 429
    assert response.headers["Content-Type"].startswith("text/html")
    assert 1 <= int(response.headers["Retry-After"]) <= window
    assert response.headers["Cache-Control"] == "no-store"
    assert "Too many attempts" in response.get_data(as_text=True)


def _assert_429_json(response, window: int) -> None:
    assert response.status_code == 429, (response.status_code, response.get_data()[:200])
    assert response.get_json()["error"] == "too_many_requests"
    assert 1 <= int(response.headers["Retry-After"]) <= window
    assert response.headers["Cache-Control"] == "no-store"


def _signed_in(response, username: str) -> bool:
    return response.status_code == 200 and f"signed in as {username}" in response.get_data(
        as_text=True)


def _from(app, ip: str):
    """A browser whose requests arrive through one trusted proxy that saw ``ip``."""
    browser = app.test_client()
    browser.environ_base["HTTP_X_FORWARDED_FOR"] = ip
    return browser


# -- login --------------------------------------------------------------------------------

@pytest.mark.settings(ratelimit_login="3/minute")
def test_login_brute_force_gets_429_with_retry_after_while_another_user_signs_in(app, client):
    alice = make_person(app, "alice")
    make_person(app, "bob", email="bob@example.test")
    for _ in range(3):
        assert sign_in(client, "alice", WRONG).status_code == 200  # the form, with an error
    _assert_429_page(sign_in(client, "alice", WRONG), 60)
    _assert_429_page(sign_in(client, "alice", PASSWORD), 60)  # even the right password
    assert _signed_in(sign_in(app.test_client(), "bob"), "bob")

    (lockout,) = audit_events(app, "login.locked_out")
    assert lockout.actor == f"user:{alice.id}" and lockout.outcome == "failure"
    # Two refused posts, one event per key per window: a flood cannot flood the audit log.
    (exceeded,) = audit_events(app, "ratelimit.exceeded")
    assert exceeded.actor == f"user:{alice.id}" and '"policy":"login"' in exceeded.details
    assert exceeded.ip == "127.0.0.1"
    assert len(audit_events(app, "login.failed")) == 3  # refused posts check nothing


@pytest.mark.settings(ratelimit_login="3/minute", trusted_proxies=1)
def test_a_locked_pair_does_not_lock_the_user_out_from_another_address(app):
    make_person(app, "alice")
    attacker = _from(app, "198.51.100.7")
    for _ in range(3):
        sign_in(attacker, "alice", WRONG)
    _assert_429_page(sign_in(attacker, "alice", PASSWORD), 60)
    assert _signed_in(sign_in(_from(app, "203.0.113.20"), "alice"), "alice")
    (exceeded,) = audit_events(app, "ratelimit.exceeded")
    assert exceeded.ip == "198.51.100.7"


@pytest.mark.settings(ratelimit_login="3/minute")
def test_x_forwarded_for_is_not_trusted_by_default(app):
    make_person(app, "alice")
    for n in range(3):
        sign_in(_from(app, f"198.51.100.{n}"), "alice", WRONG)
    # A new forged address each time changes nothing: the socket peer is the key.
    _assert_429_page(sign_in(_from(app, "203.0.113.99"), "alice", PASSWORD), 60)
    assert {e.ip for e in audit_events(app, "login.")} == {"127.0.0.1"}


@pytest.mark.settings(ratelimit_login="2/minute", ratelimit_login_ip="100/minute")
def test_only_failures_count_against_the_username(app, client):
    make_person(app, "alice")
    for _ in range(5):
        assert _signed_in(sign_in(client, "alice"), "alice")
    assert sign_in(client, "alice", WRONG).status_code == 200
    assert _signed_in(sign_in(client, "alice"), "alice")


@pytest.mark.settings(ratelimit_login="2/minute", ratelimit_login_ip="5/minute")
def test_csrf_refused_posts_count_against_the_ip_only(app, client):
    make_person(app, "alice")
    client.get("/login")
    for _ in range(4):  # more than the username limit
        forged = client.post("/login", data={"csrf_token": "forged", "username": "alice",
                                             "password": WRONG})
        assert forged.status_code == 400
    assert _signed_in(sign_in(client, "alice"), "alice")  # the username is not locked: 5th post
    _assert_429_page(sign_in(client, "alice"), 60)  # the IP is: 6th post
    (exceeded,) = audit_events(app, "ratelimit.exceeded")
    assert '"policy":"login_ip"' in exceeded.details and exceeded.actor == "system"


@pytest.mark.settings(ratelimit_login="2/2seconds")
def test_a_lockout_ends_with_its_window(app, client):
    import time

    make_person(app, "alice")
    for _ in range(2):
        sign_in(client, "alice", WRONG)
    response = sign_in(client, "alice", PASSWORD)
    _assert_429_page(response, 2)
    time.sleep(int(response.headers["Retry-After"]) + 0.2)
    assert _signed_in(sign_in(client, "alice"), "alice")


def test_a_refused_post_shows_no_password_or_username_in_storage_keys(app, client):
    make_person(app, "alice")
    secret_like = "hunter2-typed-as-username"
    sign_in(client, secret_like, WRONG)
    storage = app.extensions["authserver"].extra["limits"].limiter.storage
    keys = " ".join(list(storage.storage) + list(storage.events))
    assert keys and secret_like not in keys and "alice" not in keys


# -- token, introspection, revocation -----------------------------------------------------

def _token(client, client_id, secret, **headers):
    return client.post(endpoints.TOKEN, data={"grant_type": "client_credentials"},
                       headers={**basic_auth(client_id, secret), **headers})


@pytest.mark.settings(ratelimit_token="3/minute")
def test_token_endpoint_is_limited_per_client(app, client):
    a, a_secret = make_client(app, scope="read", default_scope="read")
    b, b_secret = make_client(app, scope="read", default_scope="read")
    # Wrong secrets presented under A's client_id spend nothing of A's budget.
    for _ in range(2):
        assert _token(client, a["client_id"], "wrong").status_code == 401
    for _ in range(3):
        assert _token(client, a["client_id"], a_secret).status_code == 200
    refused = _token(client, a["client_id"], a_secret)
    _assert_429_json(refused, 60)
    assert _token(client, b["client_id"], b_secret).status_code == 200
    (event,) = audit_events(app, "ratelimit.exceeded")
    assert event.actor == f"client:{a['client_id']}" and event.client_id == a["client_id"]
    assert '"policy":"token"' in event.details and a_secret not in event.details


@pytest.mark.settings(ratelimit_token="3/minute", trusted_proxies=1)
def test_unauthenticated_token_requests_are_limited_per_ip(app):
    a, a_secret = make_client(app, scope="read", default_scope="read")
    attacker = _from(app, "198.51.100.9")
    junk = [{"grant_type": "password"}, {"grant_type": "client_credentials"},
            {"client_id": "nobody", "client_secret": "x", "grant_type": "client_credentials"}]
    for form in junk:
        assert attacker.post(endpoints.TOKEN, data=form).status_code in (400, 401)
    _assert_429_json(attacker.post(endpoints.TOKEN, data=junk[0]), 60)
    _assert_429_json(attacker.post(endpoints.TOKEN, data=junk[2]), 60)
    assert _token(_from(app, "203.0.113.4"), a["client_id"], a_secret).status_code == 200
    auth_failures = audit_events(app, "client.auth_failed")
    assert len(auth_failures) == 2  # refused requests did no work and wrote nothing else
    (event,) = audit_events(app, "ratelimit.exceeded")
    assert event.ip == "198.51.100.9" and event.actor == "system"


@pytest.mark.settings(ratelimit_introspection="2/minute")
def test_introspection_is_limited_per_client(app, client):
    rs, rs_secret = make_client(app, scope="read", default_scope="read")
    other, other_secret = make_client(app, scope="read", default_scope="read")
    for _ in range(2):
        response = client.post(endpoints.INTROSPECTION, data={"token": "x"},
                               headers=basic_auth(rs["client_id"], rs_secret))
        assert response.get_json() == {"active": False}
    _assert_429_json(client.post(endpoints.INTROSPECTION, data={"token": "x"},
                                 headers=basic_auth(rs["client_id"], rs_secret)), 60)
    response = client.post(endpoints.INTROSPECTION, data={"token": "x"},
                           headers=basic_auth(other["client_id"], other_secret))
    assert response.status_code == 200
    # The token endpoint has its own budget.
    assert _token(client, rs["client_id"], rs_secret).status_code == 200


@pytest.mark.settings(ratelimit_admin="2/minute")
def test_admin_api_is_limited_per_caller(app, client):
    token = admin_token(app)
    for _ in range(2):
        assert client.get("/admin/keys", headers=bearer(token)).status_code == 200
    refused = client.get("/admin/keys", headers=bearer(token))
    _assert_429_json(refused, 60)
    other = admin_token(app, name="second admin")
    assert client.get("/admin/keys", headers=bearer(other)).status_code == 200
    (event,) = audit_events(app, "ratelimit.exceeded")
    assert event.actor.startswith("client:") and '"policy":"admin"' in event.details
    assert token not in event.details


@pytest.mark.settings(ratelimit_admin="2/minute")
def test_admin_api_junk_bearers_are_limited_per_ip(app, client):
    for _ in range(2):
        assert client.get("/admin/keys", headers=bearer("junk")).status_code == 401
    _assert_429_json(client.get("/admin/keys", headers=bearer("junk")), 60)
    assert len(audit_events(app, "admin.auth_failed")) == 2

