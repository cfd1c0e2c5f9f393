"""The verifier against the real authorization server over HTTP: it discovers the server's
jwks_uri, trusts tokens signed with the server's active keys, and refuses the server's own
non-access-token JWTs (ID-token style `typ: JWT`)."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
from werkzeug.serving import make_server

from authserver import create_app
from authserver.verifier import InvalidToken, Verifier
from tests.support.live_server import free_port

AUDIENCE = "https://api.example.test"


@pytest.fixture
def served(settings):
    port = free_port()
    app = create_app(dataclasses.replace(settings, issuer=f"http://127.0.0.1:{port}"))
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield app
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    app.extensions["authserver"].close()


def _sign(app, alg: str, typ: str) -> str:
    svc = app.extensions["authserver"]
    now = int(time.time())
    claims = {"iss": svc.settings.issuer, "aud": AUDIENCE, "sub": "user-1", "client_id": "app",
              "scope": "orders:read", "iat": now, "exp": now + 60, "jti": "j1"}
    with app.app_context():
        return svc.signer.sign(claims, alg, typ=typ)


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_tokens_signed_by_the_server_verify_through_discovery(served, alg):
    verifier = Verifier(issuer=served.extensions["authserver"].settings.issuer, audience=AUDIENCE)
    claims = verifier.verify(_sign(served, alg, "at+jwt"), ["orders:read"])
    assert claims["sub"] == "user-1"
    assert verifier.jwks.fetch_count == 1
    with pytest.raises(InvalidToken, match="wrong token type"):
        verifier.verify(_sign(served, alg, "JWT"))
