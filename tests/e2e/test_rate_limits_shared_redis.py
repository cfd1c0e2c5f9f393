"""Two `authserver serve` processes on one Redis share their rate limits (CONTRACT §6): a
client's token budget and a brute-forced (username, IP) pair are counted across instances.
Each test uses a key prefix of its own and deletes only its own keys."""

from __future__ import annotations

import secrets

import pytest
import redis
import requests

from authserver import endpoints
from tests.support.browser import hidden_fields, make_person
from tests.support.factories import basic_auth, make_client


@pytest.fixture
def shared(settings, redis_url):
    prefix = "authserver-test-" + secrets.token_hex(6)
    yield settings.replace(ratelimit_storage_url=redis_url, ratelimit_key_prefix=prefix)
    connection = redis.Redis.from_url(redis_url)
    try:
        keys = list(connection.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            connection.delete(*keys)
    finally:
        connection.close()


def _two_servers(live_server, settings):
    return live_server(settings=settings, workers=1), live_server(settings=settings, workers=1)


def test_token_limit_is_shared_by_two_instances(app, shared, live_server, redis_url):
    shared = shared.replace(ratelimit_token="4/minute")
    client, secret = make_client(app, scope="read", default_scope="read")
    a, b = _two_servers(live_server, shared)
    auth = basic_auth(client["client_id"], secret)

    def token(server):
        return requests.post(server.url + endpoints.TOKEN, headers=auth, timeout=10,
                             data={"grant_type": "client_credentials"})

    statuses = [token(s).status_code for s in (a, b, a, b)]
    assert statuses == [200] * 4
    for server in (a, b):
        refused = token(server)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["error"] == "too_many_requests"
    connection = redis.Redis.from_url(redis_url)
    try:
        assert list(connection.scan_iter(match=f"{shared.ratelimit_key_prefix}:*"))
    finally:
        connection.close()


def _login(server, username: str, password: str) -> requests.Response:
    http = requests.Session()
    page = http.get(server.url + "/login", timeout=10)
    return http.post(server.url + "/login", timeout=10, allow_redirects=False,
                     data={**hidden_fields(page.text), "username": username,
                           "password": password})


def test_login_lockout_is_shared_by_two_instances(app, shared, live_server):
    shared = shared.replace(ratelimit_login="3/minute")
    make_person(app, "alice")
    make_person(app, "bob", email="bob@example.test")
    a, b = _two_servers(live_server, shared)
    for server in (a, b, a):
        assert _login(server, "alice", "wrong").status_code == 200
    for server in (a, b):
        refused = _login(server, "alice", "correct horse battery staple")
        assert refused.status_code == 429 and "Retry-After" in refused.headers
    ok = _login(b, "bob", "correct horse battery staple")
    assert ok.status_code == 200 and "signed in as bob" in ok.text
