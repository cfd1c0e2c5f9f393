"""Machine-to-machine tokens from a real `authserver serve`: issue, verify with PyJWT through
discovery and the JWKS, introspect, revoke."""

import jwt
import requests
from jwt import PyJWKClient

from tests.support.oauth import ASSERTION_TYPE, ClientKey, register


def test_client_credentials_end_to_end(app, live_server):
    server = live_server()
    meta, secret = register(app, scope="orders:read orders:write", default_scope="orders:read",
                            allowed_audiences=["https://orders.example", "https://billing.example"])
    rs, rs_secret = register(app, client_name="orders api", scope="x")
    doc = server.get("/.well-known/openid-configuration").json()

    response = requests.post(doc["token_endpoint"], auth=(meta["client_id"], secret), data={
        "grant_type": "client_credentials", "scope": "orders:write",
        "resource": "https://billing.example"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    token = response.json()["access_token"]

    key = PyJWKClient(doc["jwks_uri"]).get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=doc["id_token_signing_alg_values_supported"],
                        audience="https://billing.example", issuer=doc["issuer"])
    assert claims["scope"] == "orders:write" and claims["client_id"] == meta["client_id"]

    def introspect():
        r = requests.post(doc["introspection_endpoint"], data={"token": token},
                          auth=(rs["client_id"], rs_secret), timeout=10)
        assert r.status_code == 200
        return r.json()

    assert introspect()["active"] is True
    revoked = requests.post(doc["revocation_endpoint"], data={"token": token},
                            auth=(meta["client_id"], secret), timeout=10)
    assert revoked.status_code == 200
    assert introspect() == {"active": False}

    bad = requests.post(doc["token_endpoint"], auth=(meta["client_id"], "wrong"),
                        data={"grant_type": "client_credentials"}, timeout=10)
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    assert bad.headers["WWW-Authenticate"].startswith("Basic")


def test_private_key_jwt_end_to_end(app, live_server):
    server = live_server()
    key = ClientKey()
    meta, _ = register(app, scope="a", default_scope="a",
                       token_endpoint_auth_method="private_key_jwt", jwks=key.jwks)
    doc = server.get("/.well-known/openid-configuration").json()
    data = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": key.assertion(meta["client_id"], doc["token_endpoint"])}
    first = requests.post(doc["token_endpoint"], data=data, timeout=10)
    assert first.status_code == 200, first.text
    replay = requests.post(doc["token_endpoint"], data=data, timeout=10)
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"
