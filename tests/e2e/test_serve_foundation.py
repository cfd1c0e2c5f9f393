"""A real `authserver serve` process: discovery, JWKS, signatures checked by an independent
library, rotation seen by two instances on one database."""

import json
import time

import jwt
import pytest
from jwt import PyJWKClient

from authserver import create_app
from tests.support import cli


def test_discovery_and_jwks_verify_a_token_signed_by_the_active_key(live_server, settings):
    server = live_server()
    meta = server.get("/.well-known/openid-configuration").json()
    assert meta["issuer"] == server.url
    assert server.get("/.well-known/oauth-authorization-server").json() == meta

    # sign in-process with the key the server uses (same database), verify over HTTP
    app = create_app(settings.replace(issuer=server.url))
    try:
        signer = app.extensions["authserver"].signer
        now = int(time.time())
        for alg in ("RS256", "ES256"):
            token = signer.sign({"iss": server.url, "sub": "s", "aud": "a", "iat": now,
                                 "exp": now + 60}, alg=alg, typ="at+jwt")
            signing_key = PyJWKClient(meta["jwks_uri"]).get_signing_key_from_jwt(token)
            claims = jwt.decode(token, signing_key.key, algorithms=[alg], audience="a",
                                issuer=server.url)
            assert claims["sub"] == "s"
            header = jwt.get_unverified_header(token)
            assert header["typ"] == "at+jwt" and header["alg"] == alg
    finally:
        app.extensions["authserver"].engine.dispose()


def test_cli_rotation_is_served_by_two_instances_within_five_seconds(live_server, settings):
    a, b = live_server(), live_server()
    listed = json.loads(cli.run(settings, "keys", "list", "--json").stdout)["items"]
    pending = {k["kid"] for k in listed if k["state"] == "pending"}
    for server in (a, b):
        assert pending <= {k["kid"] for k in server.get("/.well-known/jwks.json").json()["keys"]}

    rotated = json.loads(cli.run(settings, "keys", "rotate").stdout)
    assert set(rotated["promoted"].values()) == pending
    started = time.monotonic()
    for server in (a, b):
        while True:
            kids = {k["kid"] for k in server.get("/.well-known/jwks.json").json()["keys"]}
            if set(rotated["pending"].values()) <= kids:
                break
            assert time.monotonic() - started < 5, "instance did not reload the key set"
            time.sleep(0.1)
    states = {k["kid"]: k["state"] for k in json.loads(
        cli.run(settings, "keys", "list", "--json").stdout)["items"]}
    assert {states[k] for k in rotated["promoted"].values()} == {"active"}
    assert {states[k] for k in rotated["retired"].values()} == {"retired"}
    assert cli.run(settings, "audit", "verify").returncode == 0


def test_init_is_idempotent_and_keeps_keys(settings):
    cli.run(settings, "init")
    first = json.loads(cli.run(settings, "keys", "list", "--json").stdout)["items"]
    out = cli.run(settings, "init").stdout
    assert "signing keys ok" in out
    assert json.loads(cli.run(settings, "keys", "list", "--json").stdout)["items"] == first


@pytest.mark.parametrize("variable, value", [
    ("AUTHSERVER_ISSUER", "http://auth.example.com"),
    ("AUTHSERVER_DATABASE_URL", "oracle://x"),
    ("AUTHSERVER_ACCESS_TOKEN_TTL", "soon"),
])
def test_a_bad_setting_stops_start_up_with_one_line(settings, variable, value):
    result = cli.run(settings, "serve", "--port", "1", env={variable: value}, check=False)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and variable in lines[0]
    assert "Traceback" not in result.stderr
