"""Security headers (clickjacking, MIME sniffing, referrer leaks, caching of tokens, HSTS) and
the request size limit: a body over AUTHSERVER_MAX_BODY_BYTES is 413 ``invalid_request`` JSON
on every endpoint, with or without Content-Length (CONTRACT §4)."""

from __future__ import annotations

import io
import socket

import pytest

from authserver import endpoints
from tests.support.browser import make_person, sign_in
from tests.support.factories import admin_token, bearer

API_PATHS = [endpoints.TOKEN, endpoints.INTROSPECTION, endpoints.REVOCATION, endpoints.USERINFO,
             "/admin/clients", "/admin/keys"]
ALL_POSTS = [endpoints.TOKEN, endpoints.INTROSPECTION, endpoints.REVOCATION, endpoints.USERINFO,
             "/login", endpoints.AUTHORIZATION, endpoints.END_SESSION, "/admin/clients",
             "/admin/users", endpoints.JWKS, endpoints.OPENID_CONFIGURATION, "/healthz",
             "/no/such/path"]


def test_html_pages_cannot_be_framed_or_sniffed(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "base-uri 'none'" in csp
    assert "'unsafe-inline'" not in csp and "script-src" not in csp or "'self'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "<script" not in response.get_data(as_text=True)  # nothing the CSP would block


def test_html_error_pages_get_the_page_policy_too(client):
    response = client.get(endpoints.AUTHORIZATION)  # no client: an error page, no redirect
    assert response.mimetype == "text/html"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("path", API_PATHS)
def test_token_and_admin_responses_are_never_cached(client, path):
    for response in (client.post(path, data={"x": "y"}), client.get(path)):
        assert response.headers["Cache-Control"] == "no-store", (path, response.status_code)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"


def test_admin_success_is_not_cached(app, client):
    response = client.get("/admin/keys", headers=bearer(admin_token(app)))
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"


def test_no_hsts_on_an_http_issuer(client):
    assert "Strict-Transport-Security" not in client.get("/healthz").headers


@pytest.mark.settings(issuer="https://auth.example.test")
def test_hsts_on_an_https_issuer(app, client):
    assert client.get("/healthz").headers["Strict-Transport-Security"].startswith("max-age=")
    make_person(app)
    assert "Strict-Transport-Security" in sign_in(client).headers


def _assert_413(response):
    assert response.status_code == 413, (response.status_code, response.get_data()[:200])
    assert response.mimetype == "application/json"
    assert response.get_json()["error"] == "invalid_request"
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.settings(max_body_bytes=1024)
@pytest.mark.parametrize("path", ALL_POSTS)
def test_a_body_over_the_limit_is_413_json_everywhere(client, path):
    _assert_413(client.post(path, data={"grant_type": "x" * 2000}))
    _assert_413(client.post(path, data=b"{" * 1025, content_type="application/json"))


@pytest.mark.settings(max_body_bytes=1024)
@pytest.mark.parametrize("path", [endpoints.TOKEN, "/login", "/admin/clients", "/healthz"])
def test_a_chunked_body_without_length_is_413_too(client, path):
    stream = io.BytesIO(b"a=" + b"x" * 5000)
    response = client.post(path, input_stream=stream, content_type="application/x-www-form-"
                           "urlencoded", headers={"Transfer-Encoding": "chunked"},
                           environ_overrides={"wsgi.input_terminated": True})
    _assert_413(response)


@pytest.mark.settings(max_body_bytes=1024)
def test_a_small_chunked_body_is_read_normally(client):
    stream = io.BytesIO(b"grant_type=client_credentials")
    response = client.post(endpoints.TOKEN, input_stream=stream,
                           content_type="application/x-www-form-urlencoded",
                           headers={"Transfer-Encoding": "chunked"},
                           environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 401  # parsed: no client authentication
    assert response.get_json()["error"] == "invalid_client"


def _raw_http(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
    return b"".join(chunks)


@pytest.mark.settings(max_body_bytes=1024)
def test_a_live_server_refuses_large_chunked_and_declared_bodies(live_server):
    server = live_server()
    body = b"grant_type=" + b"x" * 4000
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 500]), body[i:i + 500])
                       for i in range(0, len(body), 500)) + b"0\r\n\r\n"
    for head, payload in [
        (b"Transfer-Encoding: chunked\r\n", chunked),
        (b"Content-Length: %d\r\n" % len(body), body),
    ]:
        raw = _raw_http(server.port, b"POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        b"Content-Type: application/x-www-form-urlencoded\r\n" + head +
                        b"Connection: close\r\n\r\n" + payload)
        status_line, _, rest = raw.partition(b"\r\n")
        assert b" 413 " in status_line, raw[:300]
        assert b'"invalid_request"' in rest


@pytest.mark.parametrize("method,path,kwargs", [
    ("GET", endpoints.AUTHORIZATION, {"query_string": {"client_id": "a\x00b"}}),
    ("POST", endpoints.TOKEN, {"data": {"grant_type": "client_credentials",
                                        "client_id": "a\x00", "client_secret": "x"}}),
    ("POST", endpoints.INTROSPECTION, {"data": {"token": "t", "client_id": "a\x00",
                                                "client_secret": "x"}}),
    ("GET", endpoints.END_SESSION, {"query_string": {"client_id": "a\x00"}}),
])
def test_nul_characters_are_refused_before_they_reach_the_database(client, method, path,
                                                                   kwargs):
    # PostgreSQL refuses NUL in text: these were 500s there (SQLite took them).
    response = client.open(path, method=method, **kwargs)
    assert response.status_code == 400, response.get_data()[:200]
    assert response.get_json()["error"] == "invalid_request"


def test_a_nul_inside_the_login_next_url_shows_the_page(client):
    # The client_id inside ``next`` is decoded by the page itself (a 500 on PostgreSQL before).
    response = client.get("/login", query_string={"next": "/oauth2/authorize?client_id=a%00"})
    assert response.status_code == 200 and 'name="password"' in response.get_data(as_text=True)
