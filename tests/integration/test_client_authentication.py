"""Client authentication: exactly the registered method (CONTRACT §4), RFC 6749 §2.3, RFC 7523."""

import base64

import pytest

from tests.support.oauth import ASSERTION_TYPE, ClientKey, assert_oauth_error, basic, register

TOKEN = "/oauth2/token"
CC = {"grant_type": "client_credentials"}


def test_wrong_secret_is_401_with_a_basic_challenge(app, client):
    meta, secret = register(app, scope="a", default_scope="a")
    response = client.post(TOKEN, data=CC, headers=basic(meta["client_id"], secret + "x"))
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_unknown_client_is_401(app, client):
    response = client.post(TOKEN, data=CC, headers=basic("nobody", "whatever"))
    assert_oauth_error(response, 401, "invalid_client")


def test_no_client_authentication_at_all_is_401(app, client):
    response = client.post(TOKEN, data=CC)
    body = assert_oauth_error(response, 401, "invalid_client")
    assert "WWW-Authenticate" not in response.headers
    assert body["error_description"]


@pytest.mark.parametrize("header", [
    "Basic", "Basic !!!!", "Basic " + base64.b64encode(b"no-colon").decode(),
    "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
])
def test_malformed_basic_header_is_401(app, client, header):
    response = client.post(TOKEN, data=CC, headers={"Authorization": header})
    assert_oauth_error(response, 401, "invalid_client")


def test_basic_credentials_are_form_urlencoded_first(app, client):
    """RFC 6749 §2.3.1: a secret with reserved characters arrives percent-encoded."""
    meta, secret = register(app, scope="a", default_scope="a")
    response = client.post(TOKEN, data=CC, headers=basic(meta["client_id"], secret))
    assert response.status_code == 200


def test_a_basic_client_using_post_is_refused(app, client):
    meta, secret = register(app, scope="a", default_scope="a")
    response = client.post(TOKEN, data={**CC, "client_id": meta["client_id"],
                                        "client_secret": secret})
    assert_oauth_error(response, 401, "invalid_client")
    assert "WWW-Authenticate" not in response.headers


def test_a_post_client_using_basic_is_refused(app, client):
    meta, secret = register(app, scope="a", default_scope="a",
                            token_endpoint_auth_method="client_secret_post")
    response = client.post(TOKEN, data=CC, headers=basic(meta["client_id"], secret))
    assert_oauth_error(response, 401, "invalid_client")


def test_two_methods_in_one_request_are_refused(app, client):
    meta, secret = register(app, scope="a", default_scope="a")
    response = client.post(TOKEN, data={**CC, "client_id": meta["client_id"],
                                        "client_secret": secret},
                           headers=basic(meta["client_id"], secret))
    assert_oauth_error(response, 401, "invalid_client")


def test_credentials_in_the_query_string_are_not_read(app, client):
    meta, secret = register(app, scope="a", default_scope="a",
                            token_endpoint_auth_method="client_secret_post")
    response = client.post(f"{TOKEN}?client_id={meta['client_id']}&client_secret={secret}",
                           data=CC)
    assert_oauth_error(response, 401, "invalid_client")


def test_a_disabled_client_cannot_authenticate(app, client):
    meta, secret = register(app, scope="a", default_scope="a", enabled=False)
    response = client.post(TOKEN, data=CC, headers=basic(meta["client_id"], secret))
    assert_oauth_error(response, 401, "invalid_client")


# -- private_key_jwt ------------------------------------------------------------------------

@pytest.fixture
def jwt_client(app):
    key = ClientKey()
    meta, secret = register(app, scope="a", default_scope="a",
                            token_endpoint_auth_method="private_key_jwt", jwks=key.jwks)
    assert secret is None  # CONTRACT §4: such clients have no client_secret
    return meta["client_id"], key


def _assert(client_id, assertion):
    return {**CC, "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}


@pytest.mark.parametrize("aud", ["issuer", "token_endpoint"])
def test_private_key_jwt_accepts_the_issuer_or_the_token_endpoint_as_aud(
        client, settings, jwt_client, aud):
    client_id, key = jwt_client
    audience = settings.issuer if aud == "issuer" else settings.issuer + TOKEN
    response = client.post(TOKEN, data=_assert(client_id, key.assertion(client_id, audience)))
    assert response.status_code == 200, response.get_json()


def test_private_key_jwt_assertion_cannot_be_replayed(client, settings, jwt_client):
    client_id, key = jwt_client
    assertion = key.assertion(client_id, settings.issuer)
    assert client.post(TOKEN, data=_assert(client_id, assertion)).status_code == 200
    replay = client.post(TOKEN, data=_assert(client_id, assertion))
    assert_oauth_error(replay, 401, "invalid_client")


@pytest.mark.parametrize("case", [
    "expired", "wrong_aud", "wrong_iss", "other_key", "too_long", "no_jti", "bad_type",
    "garbage",
])
def test_private_key_jwt_bad_assertions_are_invalid_client(client, settings, jwt_client, case):
    client_id, key = jwt_client
    aud = settings.issuer
    data = {
        "expired": lambda: _assert(client_id, key.assertion(client_id, aud, lifetime=-120)),
        "wrong_aud": lambda: _assert(client_id, key.assertion(client_id, "https://else")),
        "wrong_iss": lambda: _assert(client_id, key.assertion(client_id, aud, iss="x")),
        "other_key": lambda: _assert(client_id, ClientKey(key.kid).assertion(client_id, aud)),
        "too_long": lambda: _assert(client_id, key.assertion(client_id, aud, lifetime=86400)),
        "no_jti": lambda: _assert(client_id, key.assertion(client_id, aud, jti="")),
        "bad_type": lambda: {**_assert(client_id, key.assertion(client_id, aud)),
                             "client_assertion_type": "urn:x"},
        "garbage": lambda: {**_assert(client_id, "not.a.jwt"), "client_id": client_id},
    }[case]()
    assert_oauth_error(client.post(TOKEN, data=data), 401, "invalid_client")


def test_private_key_jwt_client_cannot_use_a_secret(app, client, jwt_client):
    client_id, _ = jwt_client
    response = client.post(TOKEN, data=CC, headers=basic(client_id, "guess"))
    assert_oauth_error(response, 401, "invalid_client")
