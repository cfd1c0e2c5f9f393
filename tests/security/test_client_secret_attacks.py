"""Attacks on client secrets and client authentication, each shown failing."""

import threading

import pytest
from sqlalchemy import text

from tests.support.json_server import JsonServer
from tests.support.oauth import ASSERTION_TYPE, ClientKey, assert_oauth_error, basic, register

TOKEN = "/oauth2/token"
CC = {"grant_type": "client_credentials"}


def test_the_stored_digest_is_never_accepted_as_the_secret(app, client):
    meta, secret = register(app, scope="a", default_scope="a")
    svc = app.extensions["authserver"]
    with svc.engine.connect() as conn:
        digest = conn.execute(text("SELECT secret_digest FROM clients WHERE client_id = :c"),
                              {"c": meta["client_id"]}).scalar()
    assert digest and secret not in digest
    response = client.post(TOKEN, data=CC, headers=basic(meta["client_id"], digest))
    assert_oauth_error(response, 401, "invalid_client")


def test_secrets_are_stored_only_as_digests(app, backend, settings):
    _, secret = register(app, scope="a", default_scope="a")
    svc = app.extensions["authserver"]
    with svc.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM clients")).all()
    assert secret not in repr(rows)


def test_hostile_characters_in_parameters_never_become_a_500(app, client):
    meta, secret = register(app, scope="a", default_scope="a")
    auth = basic(meta["client_id"], secret)
    for value in ['"', "\\", "\u00e9\u4e2d", "\x00", "'; DROP TABLE clients; --", "a" * 5000]:
        for field in ("grant_type", "scope", "resource"):
            data = {**CC, field: value}
            response = client.post(TOKEN, data=data, headers=auth)
            assert response.status_code in (400, 401), (field, value, response.status_code)
            assert response.get_json()["error"]
            assert "Traceback" not in response.get_data(as_text=True)


def test_jwks_uri_on_a_private_address_is_never_fetched(app, client, settings):
    """SSRF guard: a private_key_jwt client whose jwks_uri resolves to loopback is refused
    before any connection (AUTHSERVER_ALLOW_PRIVATE_JWKS_URI is off by default)."""
    key = ClientKey()
    with JsonServer(key.jwks) as target:
        meta, _ = register(app, scope="a", default_scope="a",
                           token_endpoint_auth_method="private_key_jwt",
                           jwks_uri=target.url.replace("http://", "https://") + "/jwks")
        client_id = meta["client_id"]
        response = client.post(TOKEN, data={
            **CC, "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": key.assertion(client_id, settings.issuer)})
        assert_oauth_error(response, 401, "invalid_client")
        assert target.hits == 0


@pytest.mark.settings(allow_private_jwks_uri=True)
def test_jwks_uri_is_fetched_when_the_operator_allows_private_addresses(app, client, settings):
    key = ClientKey()
    with JsonServer(key.jwks) as target:
        meta, _ = register(app, scope="a", default_scope="a",
                           token_endpoint_auth_method="private_key_jwt",
                           jwks_uri=target.url + "/jwks")
        response = client.post(TOKEN, data={
            **CC, "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": key.assertion(meta["client_id"], settings.issuer)})
        assert response.status_code == 200, response.get_json()
        assert target.hits == 1


def test_concurrent_replays_of_one_assertion_yield_one_token(app, settings):
    key = ClientKey()
    meta, _ = register(app, scope="a", default_scope="a",
                       token_endpoint_auth_method="private_key_jwt", jwks=key.jwks)
    assertion = key.assertion(meta["client_id"], settings.issuer)
    data = {**CC, "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
    statuses, barrier = [], threading.Barrier(4)

    def attempt():
        c = app.test_client()
        barrier.wait()
        statuses.append(c.post(TOKEN, data=data).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200, 401, 401, 401]
