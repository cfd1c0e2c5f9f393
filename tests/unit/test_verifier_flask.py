"""require_scope in a Flask app and the example resource API, through the test client and as a
real `flask run` process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from flask import Flask, g, jsonify

from authserver.verifier import Verifier, current_claims, require_scope
from examples.resource_api import ORDERS, create_app
from tests.support.jwks_server import EC_KID, RSA_KID, running_issuer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def issuer():
    with running_issuer() as stub:
        yield stub


@pytest.fixture
def client(issuer):
    verifier = Verifier(issuer=issuer.issuer, audience=issuer.audience, realm="orders-api")
    app = Flask(__name__)

    @app.get("/orders")
    @require_scope(verifier, "orders:read")
    def orders():
        assert g.token_claims is current_claims()
        return jsonify(sub=current_claims()["sub"])

    @app.get("/open")
    @require_scope(verifier)
    def any_token():
        return jsonify(scope=current_claims().get("scope"))

    return app.test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response, status: int, error: str, challenge: str) -> None:
    assert response.status_code == status
    assert response.headers["WWW-Authenticate"] == challenge
    assert response.headers["Cache-Control"] == "no-store"
    assert response.is_json and response.json["error"] == error
    assert isinstance(response.json["error_description"], str)


def test_valid_token_with_scope_reaches_the_view(client, issuer):
    response = client.get("/orders", headers=bearer(issuer.sign(RSA_KID)))
    assert response.status_code == 200 and response.json == {"sub": "user-1"}


def test_any_valid_token_passes_a_scopeless_guard(client, issuer):
    token = issuer.sign(EC_KID, issuer.claims(scope=None))
    response = client.get("/open", headers=bearer(token))
    assert response.status_code == 200 and response.json == {"scope": None}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic dXNlcjpwYXNz"}])
def test_no_bearer_credentials_get_a_bare_challenge(client, headers):
    response = client.get("/orders", headers=headers)
    assert_error(response, 401, "missing_authorization", 'Bearer realm="orders-api"')


@pytest.mark.parametrize("value", ["Bearer", "Bearer ", "Bearer a b", "Bearer <token>",
                                   "Bearer e30.e30.e30"])
def test_empty_or_malformed_bearer_is_invalid_token(client, value):
    response = client.get("/orders", headers={"Authorization": value})
    assert response.status_code == 401
    assert response.json["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith(
        'Bearer realm="orders-api", error="invalid_token", error_description="')


def test_expired_token_is_401_with_a_fixed_description(client, issuer):
    claims = issuer.claims()
    claims.update(exp=claims["iat"] - 30, iat=claims["iat"] - 100)
    response = client.get("/orders", headers=bearer(issuer.sign(RSA_KID, claims)))
    assert_error(response, 401, "invalid_token", 'Bearer realm="orders-api", '
                 'error="invalid_token", error_description="token expired"')


def test_missing_scope_is_403_insufficient_scope(client, issuer):
    token = issuer.sign(RSA_KID, issuer.claims(scope="profile"))
    response = client.get("/orders", headers=bearer(token))
    assert_error(response, 403, "insufficient_scope", 'Bearer realm="orders-api", '
                 'error="insufficient_scope", error_description="token lacks the required scope",'
                 ' scope="orders:read"')
    assert response.json["scope"] == "orders:read"


def test_invalid_scope_names_are_refused_when_decorating(issuer):
    verifier = Verifier(issuer=issuer.issuer, audience=issuer.audience)
    with pytest.raises(ValueError):
        require_scope(verifier, 'bad"scope')


def test_current_claims_outside_a_guarded_view_raises():
    with Flask(__name__).test_request_context("/"), pytest.raises(RuntimeError):
        current_claims()


# --- the example API ------------------------------------------------------------------------

@pytest.fixture
def example(issuer):
    return create_app(issuer.issuer, issuer.audience).test_client()


def test_example_whoami_returns_the_verified_claims_top_level(example, issuer):
    claims = issuer.claims(scope="profile")
    response = example.get("/api/whoami", headers=bearer(issuer.sign(EC_KID, claims)))
    assert response.status_code == 200 and response.json == claims


def test_example_orders_needs_orders_read(example, issuer):
    ok = example.get("/api/orders", headers=bearer(issuer.sign(RSA_KID)))
    assert ok.status_code == 200 and ok.json == ORDERS
    denied = example.get("/api/orders",
                         headers=bearer(issuer.sign(RSA_KID, issuer.claims(scope="profile"))))
    assert denied.status_code == 403 and denied.json["error"] == "insufficient_scope"
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer x y"}):
        response = example.get("/api/orders", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def test_example_without_configuration_says_what_is_missing(monkeypatch):
    monkeypatch.delenv("RESOURCE_ISSUER", raising=False)
    with pytest.raises(RuntimeError, match="RESOURCE_ISSUER"):
        create_app()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_example_api_runs_with_flask_run(issuer):
    port = _free_port()
    env = {**os.environ, "RESOURCE_ISSUER": issuer.issuer, "RESOURCE_AUDIENCE": issuer.audience}
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "examples.resource_api", "run", "--port",
         str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                requests.get(f"{base}/api/whoami", timeout=1).close()
                break
            except requests.ConnectionError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "flask run did not start"
                time.sleep(0.1)
        with requests.Session() as http:
            token = issuer.sign(EC_KID)
            whoami = http.get(f"{base}/api/whoami", headers=bearer(token), timeout=5)
            assert whoami.status_code == 200 and whoami.json()["iss"] == issuer.issuer
            orders = http.get(f"{base}/api/orders", headers=bearer(token), timeout=5)
            assert orders.status_code == 200 and orders.json() == ORDERS
            missing = http.get(f"{base}/api/orders", timeout=5)
            assert missing.status_code == 401
            assert missing.headers["WWW-Authenticate"] == 'Bearer realm="api"'
            empty = http.get(f"{base}/api/orders", headers={"Authorization": "Bearer "}, timeout=5)
            assert empty.status_code == 401 and empty.json()["error"] == "invalid_token"
            narrow = issuer.sign(RSA_KID, issuer.claims(scope="profile"))
            denied = http.get(f"{base}/api/orders", headers=bearer(narrow), timeout=5)
            assert denied.status_code == 403
            assert 'scope="orders:read"' in denied.headers["WWW-Authenticate"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stderr.close()
