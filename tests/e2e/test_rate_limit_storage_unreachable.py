"""A rate-limit storage (Redis) whose host goes dark — no reset, packets just vanish — costs
a request at most a moment (ratelimit.REDIS_TIMEOUT), once per process every DOWN_SECONDS:
meanwhile each process counts in its own memory (limits still hold, per process; nobody is
locked out by a window they cannot see), and once Redis answers again its counts decide.
Before: every request waited out redis-py's 5 s timeout twice and was then allowed unlimited.

`authserver serve` runs in a network namespace of its own on SQLite and reaches this
machine's Redis over a veth pair (tests/support/netns.py) that the test then blackholes.
"""

from __future__ import annotations

import time

import pytest

from authserver import endpoints
from authserver.ratelimit import DOWN_SECONDS
from tests.support import netns
from tests.support.oauth import register

CC = {"grant_type": "client_credentials"}
ANSWER_WITHIN = 2.0  # seconds, each request while Redis is dark (REDIS_TIMEOUT 0.5 s)
LIMIT = 8  # token requests a minute per client


@pytest.fixture(params=["sqlite"])  # the database stays local: only Redis goes dark
def backend(request) -> str:
    return request.param


def test_a_rate_limit_storage_gone_dark_fails_open_quickly(
        app, settings, redis_url, leak_registry, tmp_path, request):
    from redis.connection import parse_url

    target = parse_url(redis_url)
    ns, redis_link, (host, port) = netns.path_to(
        request, (target.get("host", "127.0.0.1"), target.get("port", 6379)))

    meta, secret = register(app, scope="a", default_scope="a")
    auth = (meta["client_id"], secret)
    inst = settings.replace(
        ratelimit_storage_url=f"redis://{host}:{port}/{target.get('db', 0)}",
        ratelimit_key_prefix=f"dark{port}", ratelimit_token=f"{LIMIT}/minute")
    server = netns.served(request, leak_registry, ns, inst, tmp_path / "serve.log")

    def token() -> tuple[int, float]:
        began = time.monotonic()
        status = server.post(endpoints.TOKEN, data=CC, auth=auth).status_code
        return status, time.monotonic() - began

    assert [token()[0] for _ in range(3)] == [200] * 3  # Flask, then the fast path; in Redis

    # Redis goes dark: answers come at once, counted in the process's memory from zero.
    ns.cut(redis_link)
    dark = [token() for _ in range(LIMIT + 1)]
    assert [status for status, _ in dark] == [200] * LIMIT + [429], dark
    assert max(took for _, took in dark) < ANSWER_WITHIN, dark
    assert "rate-limit storage unavailable" in server.log()

    # Back: after DOWN_SECONDS Redis decides again, with its 3 of 8 (memory has 8 of 8).
    ns.mend(redis_link)
    time.sleep(DOWN_SECONDS + 0.5)
    assert token()[0] == 200
