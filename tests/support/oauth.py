"""OAuth helpers for tests: register clients through the real service, authenticate, assert
RFC 6749 error shapes, make private_key_jwt assertions."""

from __future__ import annotations

import base64
import secrets
import time
from urllib.parse import quote

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from authserver.admin.clients import create_client


def register(app, **metadata) -> tuple[dict, str | None]:
    """Create a client via admin/clients.py; returns (its public dict + client_id, secret)."""
    from authserver.admin.clients import client_to_dict

    svc = app.extensions["authserver"]
    metadata.setdefault("client_name", "test client")
    metadata.setdefault("grant_types", ["client_credentials"])
    with svc.session_factory() as session:
        client, secret = create_client(session, svc.digester, svc.settings, metadata,
                                       actor="system")
        return client_to_dict(client), secret


def basic(client_id: str, secret: str) -> dict:
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def assert_oauth_error(response, status: int, error: str) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data()[:300])
    body = response.get_json()
    assert body["error"] == error, body
    assert response.headers["Cache-Control"] == "no-store"
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "sqlalchemy" not in text.lower()
    return body


class ClientKey:
    """An EC P-256 key pair for private_key_jwt clients."""

    def __init__(self, kid: str | None = None):
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.kid = kid or secrets.token_hex(4)
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.public_jwk = {**jwk, "kid": self.kid, "use": "sig", "alg": "ES256"}

    @property
    def jwks(self) -> dict:
        return {"keys": [self.public_jwk]}

    def assertion(self, client_id: str, aud: str, *, lifetime: int = 60, jti: str | None = None,
                  **overrides) -> str:
        now = int(time.time())
        claims = {"iss": client_id, "sub": client_id, "aud": aud, "iat": now,
                  "exp": now + lifetime,
                  "jti": secrets.token_urlsafe(12) if jti is None else jti}
        claims.update(overrides)
        return jwt.encode(claims, self.private, algorithm="ES256", headers={"kid": self.kid})


ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
