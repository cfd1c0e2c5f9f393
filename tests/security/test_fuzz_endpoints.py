"""Hostile input on every public endpoint (hypothesis, bounded): each answer is a 2xx, a
redirect to a registered place, or a specific 4xx (JSON with ``error`` on APIs, an HTML page on
browser pages); never a 5xx, a stack trace or SQL; and a refused request changes no row
(audit events excepted). The admin API's own schema fuzzing is test_admin_openapi_fuzz.py;
here it gets junk bearers and junk paths."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from authserver import endpoints, models
from authserver.extensions import services
from tests.support.browser import REDIRECT_URI, make_person, make_rp, sign_in
from tests.support.factories import basic_auth, make_client

FUZZ = settings(max_examples=50, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
HIGH_LIMITS = pytest.mark.settings(ratelimit_login="100000/minute",
                                   ratelimit_login_ip="100000/minute",
                                   ratelimit_token="100000/minute",
                                   ratelimit_introspection="100000/minute",
                                   ratelimit_admin="100000/minute")
pytestmark = HIGH_LIMITS

NASTY = ["", " ", "'", '"', "\\", "\x00", "%00", "' OR '1'='1", "1; DROP TABLE clients--",
         "ü", "\u202e", "\n\r", "a" * 3000, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
         "eyJ" + "A" * 40 + ".x.y", "null", "[]", "{}", "-1", "0", "99999999999999999999",
         "https://evil.example/cb", "javascript:alert(1)", "//evil.example",
         REDIRECT_URI + "?x=1", REDIRECT_URI.upper(), "openid openid", "S256", "plain",
         "client_secret_basic", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]
TEXT = st.one_of(st.sampled_from(NASTY),
                 st.text(st.characters(exclude_categories=("Cs",)), max_size=40))
MAYBE = st.one_of(st.none(), TEXT)
LEAKS = ("Traceback", "sqlalchemy", "SELECT ", "psycopg", "sqlite3", 'File "/')
UNCHANGED_EXCEPT = {"audit_events", "audit_chain"}


@dataclass
class World:
    app: object
    cc: dict
    cc_secret: str
    rp: dict
    rp_secret: str
    public: dict


@pytest.fixture
def world(app) -> World:
    cc, cc_secret = make_client(app, scope="read write", default_scope="read")
    rp, rp_secret = make_rp(app, post_logout_redirect_uris=["https://rp.example.test/bye"])
    public, _ = make_rp(app, client_name="SPA", token_endpoint_auth_method="none")
    make_person(app)
    app.test_client().get(endpoints.JWKS)  # the first request creates the signing keys
    return World(app, cc, cc_secret, rp, rp_secret, public)


def _counts(app) -> dict[str, int]:
    with services(app).session_factory() as db:
        return {t.name: db.scalar(select(func.count()).select_from(t))
                for t in models.Base.metadata.sorted_tables if t.name not in UNCHANGED_EXCEPT}


def _form(**fields) -> dict:
    return {k: v for k, v in fields.items() if v is not None}


def _check(world: World, response, before: dict, *, page: bool = False) -> None:
    status = response.status_code
    body = response.get_data(as_text=True)
    assert status < 500, (status, body[:300])
    for leak in LEAKS:
        assert leak not in body, (leak, body[:300])
    if 300 <= status < 400:
        location = response.headers["Location"]
        allowed = (REDIRECT_URI, "https://rp.example.test/bye", "/login", "/oauth2/")
        assert location.startswith(allowed), location
    if status >= 400:
        if page and response.mimetype == "text/html":
            assert "<h1" in body
        else:
            assert response.mimetype == "application/json", (status, body[:200])
            assert isinstance(response.get_json().get("error"), str)
        assert _counts(world.app) == before, "a refused request changed the database"


AUTH = st.sampled_from(["none", "basic-cc", "basic-junk", "basic-wrong", "post-cc", "bearer"])


def _header(value: str) -> str:
    """HTTP cannot carry a line break inside a header value (the client refuses it)."""
    return value.replace("\r", "").replace("\n", "")


def _auth(world: World, kind: str, junk: str) -> tuple[dict, dict]:
    junk = _header(junk)
    if kind == "basic-cc":
        return basic_auth(world.cc["client_id"], world.cc_secret), {}
    if kind == "basic-wrong":
        return basic_auth(world.rp["client_id"], junk or "x"), {}
    if kind == "basic-junk":
        return {"Authorization": "Basic " + junk}, {}
    if kind == "post-cc":
        return {}, {"client_id": world.cc["client_id"], "client_secret": world.cc_secret}
    if kind == "bearer":
        return {"Authorization": "Bearer " + junk}, {}
    return {}, {}


@FUZZ
@given(grant=st.one_of(st.sampled_from(["authorization_code", "client_credentials",
                                        "refresh_token", "password", "implicit",
                                        "urn:ietf:params:oauth:grant-type:jwt-bearer"]), TEXT),
       auth=AUTH, junk=TEXT, code=MAYBE, redirect_uri=MAYBE, verifier=MAYBE, refresh=MAYBE,
       scope=MAYBE, resource=st.lists(TEXT, max_size=3), assertion=MAYBE)
def test_token_endpoint(world, grant, auth, junk, code, redirect_uri, verifier, refresh, scope,
                        resource, assertion):
    headers, creds = _auth(world, auth, junk)
    form = _form(grant_type=grant, code=code, redirect_uri=redirect_uri, code_verifier=verifier,
                 refresh_token=refresh, scope=scope, client_assertion=assertion, **creds)
    if resource:
        form["resource"] = resource
    before = _counts(world.app)
    response = world.app.test_client().post(endpoints.TOKEN, data=form, headers=headers)
    if response.status_code == 200:
        assert grant == "client_credentials" and auth in ("basic-cc", "post-cc")
    _check(world, response, before)
    assert response.headers["Cache-Control"] == "no-store"


@FUZZ
@given(path=st.sampled_from([endpoints.INTROSPECTION, endpoints.REVOCATION]), auth=AUTH,
       junk=TEXT, token=MAYBE, hint=MAYBE)
def test_introspection_and_revocation(world, path, auth, junk, token, hint):
    headers, creds = _auth(world, auth, junk)
    before = _counts(world.app)
    response = world.app.test_client().post(
        path, data=_form(token=token, token_type_hint=hint, **creds), headers=headers)
    _check(world, response, before)
    if path == endpoints.INTROSPECTION and response.status_code == 200:
        assert response.get_json() == {"active": False}


@FUZZ
@given(path=st.sampled_from([endpoints.OPENID_CONFIGURATION, endpoints.OAUTH_METADATA,
                             endpoints.JWKS, "/healthz", "/readyz", "/metrics"]),
       method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD"]),
       query=st.dictionaries(TEXT, TEXT, max_size=3))
def test_discovery_jwks_and_ops(world, path, method, query):
    before = _counts(world.app)
    response = world.app.test_client().open(path, method=method, query_string=query)
    _check(world, response, before)


@FUZZ
@given(client=st.sampled_from(["rp", "public", "junk"]), junk=TEXT,
       params=st.fixed_dictionaries({}, optional={
           k: TEXT for k in ("response_type", "redirect_uri", "scope", "state", "nonce",
                             "code_challenge", "code_challenge_method", "prompt", "max_age",
                             "login_hint", "response_mode", "request", "claims")}),
       signed_in=st.booleans(), post=st.booleans(), decision=MAYBE, csrf=MAYBE)
def test_authorization_endpoint_and_consent(world, client, junk, params, signed_in, post,
                                            decision, csrf):
    browser = world.app.test_client()
    if signed_in:
        sign_in(browser)
    client_id = {"rp": world.rp["client_id"], "public": world.public["client_id"]}.get(
        client, junk)
    fields = {"client_id": client_id, **params}
    if post:
        fields.update(_form(decision=decision, csrf_token=csrf))
    before = _counts(world.app)
    if post:
        response = browser.post(endpoints.AUTHORIZATION, data=fields)
    else:
        response = browser.get(endpoints.AUTHORIZATION, query_string=fields)
    _check(world, response, before, page=True)


@FUZZ
@given(username=MAYBE, password=MAYBE, next_url=MAYBE, csrf=st.sampled_from(
    ["valid", "none", "junk"]), junk=TEXT)
def test_login_form(world, username, password, next_url, csrf, junk):
    from tests.support.browser import csrf_token

    browser = world.app.test_client()
    token = csrf_token(browser.get("/login").get_data(as_text=True))
    form = _form(username=username, password=password, next=next_url,
                 csrf_token={"valid": token, "junk": junk}.get(csrf))
    before = _counts(world.app)
    response = browser.post("/login", data=form)
    if response.status_code < 400:
        return  # a sign-in may succeed (it creates a session row): nothing was refused
    _check(world, response, before, page=True)


@FUZZ
@given(path=st.sampled_from([endpoints.USERINFO, endpoints.END_SESSION]),
       method=st.sampled_from(["GET", "POST"]), auth=st.sampled_from(["none", "bearer"]),
       junk=TEXT, hint=MAYBE, post_logout=MAYBE, state=MAYBE, client_id=MAYBE)
def test_userinfo_and_logout(world, path, method, auth, junk, hint, post_logout, state,
                             client_id):
    headers, _ = _auth(world, auth, junk)
    fields = _form(id_token_hint=hint, post_logout_redirect_uri=post_logout, state=state,
                   client_id=client_id, access_token=junk if auth == "none" else None)
    before = _counts(world.app)
    browser = world.app.test_client()
    if method == "GET":
        response = browser.get(path, query_string=fields, headers=headers)
    else:
        response = browser.post(path, data=fields, headers=headers)
    _check(world, response, before, page=path == endpoints.END_SESSION)


@FUZZ
@given(path=st.one_of(st.sampled_from(["/admin/clients", "/admin/users", "/admin/keys",
                                       "/admin/audit", "/admin/keys/rotate",
                                       "/admin/clients/x/secret"]),
                      TEXT.map(lambda s: "/admin/" + s.replace("?", "").replace("#", ""))),
       method=st.sampled_from(["GET", "POST", "PATCH", "DELETE"]),
       bearer=st.one_of(st.none(), TEXT), body=st.one_of(st.none(), TEXT))
def test_admin_api_with_junk_bearers(world, path, method, bearer, body):
    headers = {"Authorization": f"Bearer {_header(bearer)}"} if bearer is not None else {}
    before = _counts(world.app)
    response = world.app.test_client().open(path, method=method, headers=headers,
                                            data=body, content_type="application/json")
    assert response.status_code in (400, 401, 404, 405), response.status_code
    _check(world, response, before)
