"""A database host that goes dark (a failover or a partition: no reset, no refusal, packets
just vanish) fails requests within a bounded time instead of holding them, and the server
recovers when the path comes back (db.PG_CONNECT_ARGS).

`authserver serve` runs in a network namespace of its own and reaches this machine's
PostgreSQL over a veth pair (tests/support/netns.py); the test drops every packet on that pair
while requests are made over a second one. Without the TCP timeouts a query waits out the
kernel's retransmissions (~15 minutes) and these requests time out here instead.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy.engine import make_url

from authserver import endpoints
from tests.support import netns
from tests.support.oauth import register

pytestmark = pytest.mark.postgresql_only
CC = {"grant_type": "client_credentials"}
FAIL_WITHIN = 45.0  # tcp_user_timeout (20 s) + connect_timeout (5 s) + a margin


@pytest.fixture(params=["postgresql"])
def backend(request) -> str:
    return request.param


def _wait(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False


def test_a_database_gone_dark_fails_requests_in_bounded_time_and_they_recover(
        app, settings, database_url, leak_registry, tmp_path, request):
    pg = make_url(database_url)
    ns, db_link, (host, port) = netns.path_to(request, (pg.host, pg.port or 5432))
    via_link = pg.set(host=host, port=port)

    meta, secret = register(app, scope="a", default_scope="a")
    auth = (meta["client_id"], secret)
    inst = settings.replace(database_url=via_link.render_as_string(hide_password=False))
    server = netns.served(request, leak_registry, ns, inst, tmp_path / "serve.log")
    get = server.get

    def post(path: str, data: dict) -> requests.Response:
        return server.post(path, data=data, auth=auth)

    for _ in range(2):  # the first through Flask (caches the client), then the fast path
        issued = post(endpoints.TOKEN, CC)
        assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    assert post(endpoints.INTROSPECTION, {"token": token}).json()["active"] is True

    # The path to the database goes dark: each kind of request fails, within the bound.
    ns.cut(db_link)
    cut_at = time.monotonic()

    def timed(call, *args) -> tuple[int, float]:
        response = call(*args)
        return response.status_code, time.monotonic() - cut_at

    def unknown_client() -> requests.Response:  # not in the client cache: Flask reads it
        return server.post(endpoints.TOKEN, data=CC, auth=("no-such-client", "x"))

    with ThreadPoolExecutor(4) as pool:
        results = {
            "token": pool.submit(timed, post, endpoints.TOKEN, CC),
            "unknown client": pool.submit(timed, unknown_client),
            "introspection": pool.submit(timed, post, endpoints.INTROSPECTION,
                                         {"token": token}),
            "readiness": pool.submit(timed, get, "/readyz"),
        }
        outcomes = {name: future.result() for name, future in results.items()}
    for name, (status, took) in outcomes.items():
        assert status == 503, (name, outcomes)  # temporarily_unavailable: worth a retry
        assert took < FAIL_WITHIN, (name, outcomes)

    # Still dark, the pool's dead connections gone: one connection attempt at a time waits
    # out connect_timeout (db.ConnectBreaker), the rest fail at once, and what needs no
    # database is answered meanwhile.
    again = {}
    with ThreadPoolExecutor(3) as pool:
        cut_at = time.monotonic()
        again = {name: pool.submit(timed, *call) for name, call in {
            "readiness": (get, "/readyz"), "unknown client": (unknown_client,),
            "JWKS": (get, endpoints.JWKS)}.items()}
        again = {name: future.result() for name, future in again.items()}
    assert again["JWKS"][0] == 200, again
    assert again["readiness"][0] == again["unknown client"][0] == 503, again
    # at most one connection attempt (connect_timeout 5 s) in readiness's three tries
    assert max(took for _, took in again.values()) < 8.0, again

    # The path comes back: the dead connections are replaced and requests succeed again.
    ns.mend(db_link)
    assert _wait(lambda: get("/readyz").status_code == 200, 30), server.log()[-3000:]
    assert _wait(lambda: post(endpoints.TOKEN, CC).status_code == 200, 30)
    assert post(endpoints.INTROSPECTION, {"token": token}).json()["active"] is True
