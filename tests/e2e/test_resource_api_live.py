"""The example resource API (examples/resource_api, started with `flask run`) trusting a real
`authserver serve` through its discovery and JWKS only, across a key rotation."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.support import cli
from tests.support.live_server import free_port
from tests.support.oauth import register

ROOT = Path(__file__).resolve().parents[2]
AUD = "https://orders.example"


@pytest.fixture
def resource_api(live_server):
    server = live_server()
    port = free_port()
    env = {**os.environ, "RESOURCE_ISSUER": server.url, "RESOURCE_AUDIENCE": AUD}
    proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "examples.resource_api",
                             "run", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            requests.get(url + "/api/whoami", timeout=1)
            break
        except requests.RequestException:
            assert time.monotonic() < deadline, "example API did not start"
            time.sleep(0.1)
    yield server, url
    proc.terminate()
    proc.wait(timeout=10)


def _token(server, client_id, secret, scope):
    r = requests.post(server.url + "/oauth2/token", auth=(client_id, secret), timeout=10,
                      data={"grant_type": "client_credentials", "scope": scope})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def test_example_api_accepts_real_tokens_and_refuses_others(app, settings, resource_api):
    server, api = resource_api
    meta, secret = register(app, scope="orders:read profile", allowed_audiences=[AUD])
    other, other_secret = register(app, scope="x", allowed_audiences=["https://else.example"])
    reader = _token(server, meta["client_id"], secret, "orders:read")
    plain = _token(server, meta["client_id"], secret, "profile")

    who = requests.get(api + "/api/whoami", headers={"Authorization": f"Bearer {reader}"},
                       timeout=10)
    assert who.status_code == 200
    assert who.json()["client_id"] == meta["client_id"] and who.json()["aud"] == AUD
    assert requests.get(api + "/api/orders", headers={"Authorization": f"Bearer {reader}"},
                        timeout=10).status_code == 200

    forbidden = requests.get(api + "/api/orders", headers={"Authorization": f"Bearer {plain}"},
                             timeout=10)
    assert forbidden.status_code == 403
    assert 'error="insufficient_scope"' in forbidden.headers["WWW-Authenticate"]

    wrong_aud = _token(server, other["client_id"], other_secret, "x")
    for bad in (wrong_aud, reader[:-4] + "AAAA", ""):
        r = requests.get(api + "/api/whoami", headers={"Authorization": f"Bearer {bad}"},
                         timeout=10)
        assert r.status_code == 401 and "Bearer" in r.headers["WWW-Authenticate"]
    assert requests.get(api + "/api/whoami", timeout=10).status_code == 401

    # Rotation in the middle of traffic: the token signed by the old key stays valid and the
    # one signed by the promoted key (already published as pending) is accepted too.
    rotated = json.loads(cli.run(settings.replace(issuer=server.url), "keys", "rotate").stdout)
    deadline = time.monotonic() + 5
    while True:
        fresh = _token(server, meta["client_id"], secret, "orders:read")
        if fresh.split(".")[0] != reader.split(".")[0]:  # header (kid) changed
            break
        assert time.monotonic() < deadline, "server did not switch keys"
        time.sleep(0.2)
    assert rotated["promoted"]
    for token in (reader, fresh):
        r = requests.get(api + "/api/orders", headers={"Authorization": f"Bearer {token}"},
                         timeout=10)
        assert r.status_code == 200, r.text
