"""Admin API, clients (CONTRACT §5): the full lifecycle over HTTP, and every refusal of the
RFC 7591 metadata schema answering 400 and changing nothing."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from authserver import clock, endpoints
from authserver.models import AuditEvent, Client
from tests.support.factories import (
    admin_token,
    basic_auth,
    bearer,
    client_credentials_token,
    make_client,
)


@pytest.fixture
def admin(app):
    return bearer(admin_token(app))


def _counts(app) -> tuple[int, int]:
    with app.extensions["authserver"].session_factory() as session:
        return (session.scalar(select(func.count()).select_from(Client)),
                session.scalar(select(func.count()).select_from(AuditEvent)))


def _token_status(client, client_id, secret) -> int:
    return client.post(endpoints.TOKEN, data={"grant_type": "client_credentials"},
                       headers=basic_auth(client_id, secret)).status_code


M2M = {"client_name": "orders service", "grant_types": ["client_credentials"],
       "scope": "orders:read orders:write", "default_scope": "orders:read",
       "allowed_audiences": ["https://orders.example.test"]}


def test_client_lifecycle_create_get_list_patch_rotate_delete(app, client, admin):
    created = client.post("/admin/clients", json=M2M, headers=admin)
    assert created.status_code == 201
    assert created.headers["Cache-Control"] == "no-store"
    body = created.get_json()
    client_id, secret = body["client_id"], body["client_secret"]
    assert created.headers["Location"].endswith(f"/admin/clients/{client_id}")
    assert len(secret) >= 43  # 256 bits, base64url
    assert body["client_secret_expires_at"] == 0
    assert body["allowed_audiences"] == ["https://orders.example.test"]
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert _token_status(client, client_id, secret) == 200

    shown = client.get(f"/admin/clients/{client_id}", headers=admin)
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    text = shown.get_data(as_text=True)
    assert secret not in text and "client_secret\"" not in text and "digest" not in text
    assert shown.get_json()["scope"] == "orders:read orders:write"

    patched = client.patch(f"/admin/clients/{client_id}", headers=admin,
                           json={"scope": "orders:read", "access_token_ttl": 120})
    assert patched.status_code == 200, patched.get_json()
    assert patched.get_json()["scope"] == "orders:read"
    assert patched.get_json()["access_token_ttl"] == 120
    assert patched.get_json()["client_name"] == "orders service"  # untouched
    assert "client_secret" not in patched.get_json()

    rotated = client.post(f"/admin/clients/{client_id}/secret", headers=admin,
                          json={"grace_seconds": 60})
    assert rotated.status_code == 200
    new = rotated.get_json()
    assert set(new) == {"client_id", "client_secret", "client_secret_expires_at"}
    assert new["client_id"] == client_id and new["client_secret"] != secret
    assert _token_status(client, client_id, new["client_secret"]) == 200
    assert _token_status(client, client_id, secret) == 200  # within the grace period
    clock.travel(61)
    assert _token_status(client, client_id, secret) == 401
    assert _token_status(client, client_id, new["client_secret"]) == 200

    rs, rs_secret = make_client(app, client_name="resource server")
    clock.reset()  # tokens are checked against the wall clock too (PyJWT's iat check)
    token = client_credentials_token(app, client_id, new["client_secret"])
    introspected = client.post(endpoints.INTROSPECTION, data={"token": token},
                               headers=basic_auth(rs["client_id"], rs_secret))
    assert introspected.get_json()["active"] is True
    assert client.delete(f"/admin/clients/{client_id}", headers=admin).status_code == 204
    assert client.get(f"/admin/clients/{client_id}", headers=admin).status_code == 404
    assert client.delete(f"/admin/clients/{client_id}", headers=admin).status_code == 404
    assert _token_status(client, client_id, new["client_secret"]) == 401
    # its tokens stop introspecting as active
    introspected = client.post(endpoints.INTROSPECTION, data={"token": token},
                               headers=basic_auth(rs["client_id"], rs_secret))
    assert introspected.get_json() == {"active": False}

    with app.extensions["authserver"].session_factory() as session:
        types = [e.type for e in session.scalars(
            select(AuditEvent).where(AuditEvent.client_id == client_id)
            .order_by(AuditEvent.id))]
    assert types[0] == "client.created" and "client.deleted" in types
    assert "client.secret_rotated" in types and "client.updated" in types


def test_rotation_without_grace_invalidates_the_old_secret_at_once(client, admin):
    body = client.post("/admin/clients", json=M2M, headers=admin).get_json()
    rotated = client.post(f"/admin/clients/{body['client_id']}/secret", headers=admin)
    assert rotated.status_code == 200
    assert _token_status(client, body["client_id"], body["client_secret"]) == 401
    assert _token_status(client, body["client_id"], rotated.get_json()["client_secret"]) == 200


def test_list_pages_with_an_opaque_cursor(app, client, admin):
    ids = {make_client(app, client_name=f"c{i}")[0]["client_id"] for i in range(5)}
    seen, cursor, pages = [], None, 0
    while True:
        url = "/admin/clients?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=admin)
        assert page.status_code == 200
        data = page.get_json()
        assert set(data) == {"items", "next_cursor"} and len(data["items"]) <= 2
        seen += [c["client_id"] for c in data["items"]]
        pages += 1
        cursor = data["next_cursor"]
        if cursor is None:
            break
    assert ids <= set(seen) and len(seen) == len(set(seen)) == 6  # + the admin client
    assert pages == 3
    assert seen == sorted(seen)
    for bad in ("limit=0", "limit=201", "limit=abc", "limit=-1", "cursor=%00",
                "cursor=not-ours!", "cursor="):
        refused = client.get(f"/admin/clients?{bad}", headers=admin)
        assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_request", bad


def test_public_client_has_no_secret_and_cannot_be_rotated(client, admin):
    created = client.post("/admin/clients", headers=admin, json={
        "client_name": "spa", "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": ["https://spa.example.test/cb", "com.example.app:/oauth",
                          "http://127.0.0.1:7000/cb"],
        "token_endpoint_auth_method": "none", "scope": "openid profile"})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert "client_secret" not in body and "client_secret_expires_at" not in body
    assert body["response_types"] == ["code"]
    rotated = client.post(f"/admin/clients/{body['client_id']}/secret", headers=admin)
    assert rotated.status_code == 400 and rotated.get_json()["error"] == "invalid_request"


def test_private_key_jwt_client_has_no_secret(client, admin):
    from tests.support.oauth import ClientKey

    created = client.post("/admin/clients", headers=admin, json={
        "client_name": "signer", "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "private_key_jwt", "jwks": ClientKey().jwks})
    assert created.status_code == 201, created.get_json()
    assert "client_secret" not in created.get_json()
    assert created.get_json()["jwks"]["keys"][0]["kty"] == "EC"


def test_patch_to_a_secret_method_issues_a_secret_once(client, admin):
    from tests.support.oauth import ClientKey

    body = client.post("/admin/clients", headers=admin, json={
        "client_name": "signer", "grant_types": ["client_credentials"], "scope": "a",
        "default_scope": "a", "token_endpoint_auth_method": "private_key_jwt",
        "jwks": ClientKey().jwks}).get_json()
    patched = client.patch(f"/admin/clients/{body['client_id']}", headers=admin, json={
        "token_endpoint_auth_method": "client_secret_post", "jwks": None})
    assert patched.status_code == 200, patched.get_json()
    secret = patched.get_json()["client_secret"]
    assert client.post(endpoints.TOKEN, data={
        "grant_type": "client_credentials", "client_id": body["client_id"],
        "client_secret": secret}).status_code == 200


# -- refusals: 400, RFC 7591 error, nothing changed ------------------------------------------

BASE = {"client_name": "x", "grant_types": ["client_credentials"]}
_EC_PRIVATE = {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
               "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
               "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}

METADATA_REFUSALS = [
    ("unknown field", {**BASE, "client_secret": "chosen"}, "invalid_client_metadata"),
    ("unknown field 2", {**BASE, "logo": "x"}, "invalid_client_metadata"),
    ("missing name", {"grant_types": ["client_credentials"]}, "invalid_client_metadata"),
    ("name wrong type", {**BASE, "client_name": 5}, "invalid_client_metadata"),
    ("name with NUL", {**BASE, "client_name": "a\x00b"}, "invalid_client_metadata"),
    ("lone surrogate", {**BASE, "client_name": "a\ud800"}, "invalid_client_metadata"),
    ("grant not a list", {**BASE, "grant_types": "client_credentials"},
     "invalid_client_metadata"),
    ("unknown grant", {**BASE, "grant_types": ["password"]}, "invalid_client_metadata"),
    ("implicit grant", {**BASE, "grant_types": ["implicit"]}, "invalid_client_metadata"),
    ("empty grants", {**BASE, "grant_types": []}, "invalid_client_metadata"),
    ("duplicate grants", {**BASE, "grant_types": ["client_credentials"] * 2},
     "invalid_client_metadata"),
    ("refresh without code", {**BASE, "grant_types": ["client_credentials", "refresh_token"]},
     "invalid_client_metadata"),
    ("ttl is a bool", {**BASE, "access_token_ttl": True}, "invalid_client_metadata"),
    ("ttl is a string", {**BASE, "access_token_ttl": "60"}, "invalid_client_metadata"),
    ("ttl is a float", {**BASE, "access_token_ttl": 60.5}, "invalid_client_metadata"),
    ("ttl zero", {**BASE, "access_token_ttl": 0}, "invalid_client_metadata"),
    ("ttl above the max", {**BASE, "access_token_ttl": 86401}, "invalid_client_metadata"),
    ("refresh ttl negative", {**BASE, "refresh_token_ttl": -5}, "invalid_client_metadata"),
    ("enabled is a string", {**BASE, "enabled": "true"}, "invalid_client_metadata"),
    ("skip_consent is an int", {**BASE, "skip_consent": 1}, "invalid_client_metadata"),
    ("null name", {**BASE, "client_name": None}, "invalid_client_metadata"),
    ("default scope not subset", {**BASE, "scope": "a b", "default_scope": "c"},
     "invalid_client_metadata"),
    ("scope with a quote", {**BASE, "scope": 'a "b'}, "invalid_client_metadata"),
    ("scope not a string", {**BASE, "scope": ["a"]}, "invalid_client_metadata"),
    ("unknown auth method", {**BASE, "token_endpoint_auth_method": "client_secret_jwt"},
     "invalid_client_metadata"),
    ("public client credentials", {**BASE, "token_endpoint_auth_method": "none"},
     "invalid_client_metadata"),
    ("private_key_jwt without keys", {**BASE, "token_endpoint_auth_method": "private_key_jwt"},
     "invalid_client_metadata"),
    ("jwks with a private key", {**BASE, "token_endpoint_auth_method": "private_key_jwt",
                                 "jwks": {"keys": [_EC_PRIVATE]}}, "invalid_client_metadata"),
    ("jwks with a symmetric key", {**BASE, "token_endpoint_auth_method": "private_key_jwt",
                                   "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}},
     "invalid_client_metadata"),
    ("jwks not a set", {**BASE, "token_endpoint_auth_method": "private_key_jwt",
                        "jwks": {"kty": "EC"}}, "invalid_client_metadata"),
    ("jwks and jwks_uri", {**BASE, "token_endpoint_auth_method": "private_key_jwt",
                           "jwks": {"keys": [{k: v for k, v in _EC_PRIVATE.items()
                                              if k != "d"}]},
                           "jwks_uri": "https://keys.example.test/jwks"},
     "invalid_client_metadata"),
    ("jwks_uri over http", {**BASE, "token_endpoint_auth_method": "private_key_jwt",
                            "jwks_uri": "http://keys.example.test/jwks"},
     "invalid_client_metadata"),
    ("jwks for a secret client", {**BASE, "jwks_uri": "https://keys.example.test/jwks"},
     "invalid_client_metadata"),
    ("bad cidr", {**BASE, "ip_allowlist": ["10.0.0.0/33"]}, "invalid_client_metadata"),
    ("cidr host bits", {**BASE, "ip_allowlist": ["10.0.0.1/8"]}, "invalid_client_metadata"),
    ("cidr not a string", {**BASE, "ip_allowlist": [167772160]}, "invalid_client_metadata"),
    ("audience not a URI", {**BASE, "allowed_audiences": ["orders"]},
     "invalid_client_metadata"),
    ("audience with fragment", {**BASE, "allowed_audiences": ["https://a.example#x"]},
     "invalid_client_metadata"),
    ("bad id token alg", {**BASE, "id_token_signed_response_alg": "none"},
     "invalid_client_metadata"),
    ("response_types mismatch", {**BASE, "response_types": ["code"]},
     "invalid_client_metadata"),
    ("code without redirect", {"client_name": "x"}, "invalid_redirect_uri"),
    ("code with empty redirects", {"client_name": "x", "redirect_uris": []},
     "invalid_redirect_uri"),
]

_CODE = {"client_name": "x", "grant_types": ["authorization_code"]}
BAD_REDIRECTS = [
    "https://rp.example.test/cb#frag", "http://rp.example.test/cb", "javascript:alert(1)",
    "data:text/html,hi", "file:///etc/passwd", "/relative/cb", "rp.example.test/cb",
    "https:///nohost", "https://user:pw@rp.example.test/cb", "myapp:/cb",
    "https://rp.example.test/c b", "https://rp.example.test:99999/cb", "",
    "https://rp.example.test/\ncb",
]


def _assert_refused(client, admin, app, payload: bytes | str, error: str, method="post",
                    path="/admin/clients", content_type="application/json"):
    before = _counts(app)
    response = getattr(client, method)(path, data=payload, headers=admin,
                                       content_type=content_type)
    assert response.status_code == 400, (response.status_code, response.get_data()[:200])
    assert response.headers["Cache-Control"] == "no-store"
    body = json.loads(response.get_data())  # well-formed JSON, whatever the input
    assert body["error"] == error, body
    assert isinstance(body["error_description"], str)
    assert _counts(app) == before
    return body


@pytest.mark.parametrize(("case", "payload", "error"), METADATA_REFUSALS,
                         ids=[c[0] for c in METADATA_REFUSALS])
def test_invalid_metadata_is_refused_and_changes_nothing(app, client, admin, case, payload,
                                                        error):
    _assert_refused(client, admin, app, json.dumps(payload), error)


@pytest.mark.parametrize("uri", BAD_REDIRECTS)
def test_bad_redirect_uri_is_refused(app, client, admin, uri):
    body = _assert_refused(client, admin, app, json.dumps({**_CODE, "redirect_uris": [uri]}),
                           "invalid_redirect_uri")
    assert uri not in body["error_description"] or not uri


@pytest.mark.parametrize("raw", [b"{", b"not json", b'{"client_name": "x",}', b"\xff\xfe",
                                 b'{"client_name": NaN}', b"", b'{"a": 1, "a": 2}',
                                 b"[" * 60000])
def test_malformed_json_is_refused(app, client, admin, raw):
    _assert_refused(client, admin, app, raw, "invalid_client_metadata")


@pytest.mark.parametrize("raw", [b"[]", b'"client"', b"42", b"null", b"true",
                                 b'[{"client_name": "x"}]'])
def test_a_body_that_is_not_an_object_is_refused(app, client, admin, raw):
    _assert_refused(client, admin, app, raw, "invalid_client_metadata")


def test_hostile_values_never_break_the_error_body(app, client, admin):
    for payload in ({**BASE, 'evil"\\\u2028': 1}, {**BASE, "grant_types": ['"\\<script>']},
                    {**_CODE, "redirect_uris": ['https://"\\é.example/#']}):
        body = _assert_refused(client, admin, app, json.dumps(payload),
                               "invalid_redirect_uri" if "redirect_uris" in payload
                               else "invalid_client_metadata")
        assert "script" not in body["error_description"] and '"' not in body[
            "error_description"]


def test_good_redirect_uris_are_accepted(client, admin):
    uris = ["https://rp.example.test/cb?x=1", "http://127.0.0.1:8765/cb", "http://[::1]/cb",
            "http://localhost:3000/cb", "com.example.app:/oauth2redirect"]
    created = client.post("/admin/clients", headers=admin,
                          json={**_CODE, "redirect_uris": uris})
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["redirect_uris"] == uris


def test_wrong_content_type_is_refused(app, client, admin):
    before = _counts(app)
    response = client.post("/admin/clients", data=json.dumps(BASE), headers=admin,
                           content_type="text/plain")
    assert response.status_code == 415 and response.get_json()["error"] == "invalid_request"
    assert _counts(app) == before


def test_invalid_patch_changes_nothing(app, client, admin):
    created = client.post("/admin/clients", json=M2M, headers=admin).get_json()
    path = f"/admin/clients/{created['client_id']}"
    for payload, error in [({"default_scope": "admin"}, "invalid_client_metadata"),
                           ({"scope": "other"}, "invalid_client_metadata"),  # default not in
                           ({"grant_types": ["authorization_code"]}, "invalid_redirect_uri"),
                           ({"client_name": None}, "invalid_client_metadata"),
                           ({"client_id": "mine"}, "invalid_client_metadata"),
                           ({"enabled": "no"}, "invalid_client_metadata")]:
        _assert_refused(client, admin, app, json.dumps(payload), error, method="patch",
                        path=path)
    assert client.get(path, headers=admin).get_json() == {
        k: v for k, v in created.items() if k != "client_secret"}


def test_unknown_client_is_404(client, admin):
    for method, path in [("get", "/admin/clients/nope"), ("delete", "/admin/clients/nope"),
                         ("patch", "/admin/clients/nope"), ("post", "/admin/clients/nope/secret"),
                         ("get", "/admin/clients/%00"), ("get", "/admin/clients/" + "a" * 65)]:
        kwargs = {"json": {"enabled": False}} if method == "patch" else {}
        response = getattr(client, method)(path, headers=admin, **kwargs)
        assert response.status_code == 404, (method, path)
        assert response.get_json()["error"] == "not_found"
        assert response.headers["Cache-Control"] == "no-store"


def test_disabled_client_cannot_get_tokens(client, admin):
    body = client.post("/admin/clients", json=M2M, headers=admin).get_json()
    patched = client.patch(f"/admin/clients/{body['client_id']}", headers=admin,
                           json={"enabled": False})
    assert patched.status_code == 200 and patched.get_json()["enabled"] is False
    assert _token_status(client, body["client_id"], body["client_secret"]) == 401


def test_rotate_secret_body_is_strict(client, admin):
    body = client.post("/admin/clients", json=M2M, headers=admin).get_json()
    path = f"/admin/clients/{body['client_id']}/secret"
    for payload in ({"grace_seconds": -1}, {"grace_seconds": True}, {"grace_seconds": "5"},
                    {"grace_seconds": 2592001}, {"other": 1}, []):
        response = client.post(path, json=payload, headers=admin)
        assert response.status_code == 400, payload
        assert response.get_json()["error"] == "invalid_request"
    assert _token_status(client, body["client_id"], body["client_secret"]) == 200
