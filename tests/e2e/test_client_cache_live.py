"""The per-process client cache (oauth/client_cache.py) against a real `authserver serve`
with two workers: a client change made by another process is in force on every worker
within AUTHSERVER_CLIENT_CACHE_SECONDS, and at once with 0."""

import time

import requests

from authserver.admin.clients import rotate_secret, update_client
from tests.support.oauth import register

CC = {"grant_type": "client_credentials"}


def _token(server, client_id, secret) -> int:
    return requests.post(server.url + "/oauth2/token", auth=(client_id, secret), data=CC,
                         timeout=10).status_code


def _warm(server, client_id, secret) -> None:
    """Enough requests that both workers have the client cached."""
    assert [_token(server, client_id, secret) for _ in range(12)] == [200] * 12


def test_disabled_client_is_refused_on_every_worker_within_the_interval(app, live_server):
    # The loop below sends requests for as long as the interval lasts: on a fast machine more
    # failed ones than the token limit allows an address (300/minute), and a 429 is not what
    # this test is about.
    server = live_server(workers=2, settings=app.extensions["authserver"].settings.replace(
        client_cache_seconds=1, ratelimit_token="100000/minute"))
    meta, secret = register(app, scope="a", default_scope="a")
    _warm(server, meta["client_id"], secret)

    svc = app.extensions["authserver"]
    with svc.session_factory() as session:  # another process than the server's workers
        update_client(session, svc.digester, svc.settings, meta["client_id"],
                      {"enabled": False}, actor="system")
    # Until the interval is over a worker may still answer from its cache (each re-reads
    # the change counter before a request once its last read is a second old) …
    deadline = time.monotonic() + 1 + 0.25
    while time.monotonic() < deadline:
        _token(server, meta["client_id"], secret)
    # … after it, none may.
    assert {_token(server, meta["client_id"], secret) for _ in range(12)} == {401}


def test_with_zero_seconds_a_rotated_secret_is_refused_at_once(app, live_server):
    server = live_server(workers=2, settings=app.extensions["authserver"].settings.replace(
        client_cache_seconds=0))
    meta, secret = register(app, scope="a", default_scope="a")
    _warm(server, meta["client_id"], secret)

    svc = app.extensions["authserver"]
    with svc.session_factory() as session:
        _, new_secret = rotate_secret(session, svc.digester, meta["client_id"], actor="system")
    assert {_token(server, meta["client_id"], secret) for _ in range(12)} == {401}
    assert {_token(server, meta["client_id"], new_secret) for _ in range(12)} == {200}
