"""The fast path (web/fast_path.py) against the Flask path, on the same database.

Each test sends the same requests to the app (fast path on, the default) and to a second app
on the same database and keys with ``fast_path=False``, and asserts that
- what the fast path answers is the Flask path's answer (status, headers, body shape, token
  header and claims, audit rows), and that Flask never saw those requests;
- what it must not answer reaches Flask and gets Flask's answer there, counted once.
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from sqlalchemy import select, update
from werkzeug.middleware.proxy_fix import ProxyFix

from authserver import create_app, endpoints
from authserver.models import AuditEvent, Client
from authserver.oauth import access_tokens
from authserver.web.fast_path import FastPath
from authserver.web.in_flight import Counted
from tests.support.oauth import basic, register

CC = {"grant_type": "client_credentials"}
VOLATILE = {"X-Request-ID", "Content-Length", "Date", "Server"}


def _reaching_flask(app) -> list[str]:
    """Paths of the requests the fast path handed to Flask (it answered the others)."""
    seen: list[str] = []
    outer = app.wsgi_app
    if isinstance(outer, ProxyFix):  # when proxies are trusted
        outer = outer.app
    assert isinstance(outer, Counted)  # the in-flight count (web/in_flight.py)
    fast = outer.app
    assert isinstance(fast, FastPath) == app.extensions["authserver"].settings.fast_path
    inner = fast._flask if isinstance(fast, FastPath) else fast

    def counting(environ, start_response):
        seen.append(environ["PATH_INFO"])
        return inner(environ, start_response)

    if isinstance(fast, FastPath):
        fast._flask = counting
    else:
        outer.app = counting
    return seen


@pytest.fixture
def flask_seen(app):
    return _reaching_flask(app)


@pytest.fixture
def slow_app(settings):
    application = create_app(dataclasses.replace(settings, fast_path=False))
    yield application
    application.extensions["authserver"].close()


def _headers(response) -> dict:
    return {k: v for k, v in response.headers.items() if k not in VOLATILE}


def _cached_client(app, **metadata):
    """A registered client that this app's process has in its client cache (the first
    authentication loads it, through Flask)."""
    metadata.setdefault("scope", "read write")
    metadata.setdefault("default_scope", "read")
    meta, secret = register(app, **metadata)
    if metadata.get("token_endpoint_auth_method") == "client_secret_post":
        first = app.test_client().post(endpoints.TOKEN, data={
            **CC, "client_id": meta["client_id"], "client_secret": secret})
    else:
        first = app.test_client().post(endpoints.TOKEN, data=CC,
                                       headers=basic(meta["client_id"], secret))
    assert first.status_code == 200, first.get_data()
    return meta, secret


def _events(app, type_: str) -> list[AuditEvent]:
    with app.extensions["authserver"].session_factory() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.type == type_)
                                    .order_by(AuditEvent.id)))


def test_a_token_from_the_fast_path_is_the_flask_paths_token(app, slow_app, flask_seen):
    meta, secret = _cached_client(app, allowed_audiences=["https://api.example.test"])
    auth = basic(meta["client_id"], secret)
    form = {**CC, "scope": "write read", "resource": "https://api.example.test"}
    flask_seen.clear()
    fast = app.test_client().post(endpoints.TOKEN, data=form, headers=auth)
    slow = slow_app.test_client().post(endpoints.TOKEN, data=form, headers=auth)
    assert flask_seen == []
    assert fast.status_code == slow.status_code == 200
    assert _headers(fast) == _headers(slow)
    assert fast.headers["Cache-Control"] == "no-store"
    fast_body, slow_body = fast.get_json(), slow.get_json()
    assert fast_body.keys() == slow_body.keys()
    assert {k: v for k, v in fast_body.items() if k != "access_token"} == \
           {k: v for k, v in slow_body.items() if k != "access_token"}
    assert fast.get_data()[:1] == slow.get_data()[:1] == b"{"
    assert jwt.get_unverified_header(fast_body["access_token"]) == \
        jwt.get_unverified_header(slow_body["access_token"])
    fast_claims = jwt.decode(fast_body["access_token"], options={"verify_signature": False})
    slow_claims = jwt.decode(slow_body["access_token"], options={"verify_signature": False})
    assert fast_claims.keys() == slow_claims.keys()
    for name in ("iss", "sub", "aud", "client_id", "scope"):
        assert fast_claims[name] == slow_claims[name]
    assert fast_claims["aud"] == "https://api.example.test"
    assert fast_claims["exp"] - fast_claims["iat"] == slow_claims["exp"] - slow_claims["iat"]
    assert fast_claims["jti"] != slow_claims["jti"]
    # Both issuances are audited alike, the request's id and address included.
    fast_event, slow_event = _events(app, "token.issued")[-2:]
    for event, claims in ((fast_event, fast_claims), (slow_event, slow_claims)):
        assert json.loads(event.details)["jti"] == claims["jti"]
        assert json.loads(event.details)["aud"] == "https://api.example.test"
        assert event.actor == f"client:{meta['client_id']}"
        assert event.ip == "127.0.0.1"
    assert fast_event.request_id == fast.headers["X-Request-ID"]


def test_client_secret_post_and_the_callers_request_id(app, flask_seen):
    meta, secret = _cached_client(app, token_endpoint_auth_method="client_secret_post")
    flask_seen.clear()
    response = app.test_client().post(
        endpoints.TOKEN, headers={"X-Request-ID": "trace-42"},
        data={**CC, "client_id": meta["client_id"], "client_secret": secret})
    assert response.status_code == 200 and flask_seen == []
    assert response.headers["X-Request-ID"] == "trace-42"
    assert _events(app, "token.issued")[-1].request_id == "trace-42"
    # An unacceptable request id is replaced, as Flask replaces it.
    response = app.test_client().post(
        endpoints.TOKEN, headers={"X-Request-ID": "bad id\u00e9"},
        data={**CC, "client_id": meta["client_id"], "client_secret": secret})
    assert response.status_code == 200 and response.headers["X-Request-ID"] != "bad id"


def test_the_first_request_of_a_client_goes_through_flask_then_the_cache_serves(app,
                                                                                flask_seen):
    meta, secret = register(app, scope="read", default_scope="read")
    auth = basic(meta["client_id"], secret)
    for _ in range(3):
        assert app.test_client().post(endpoints.TOKEN, data=CC, headers=auth).status_code == 200
    assert flask_seen == [endpoints.TOKEN]


@pytest.mark.parametrize("case", [
    "wrong secret", "unknown client", "scope not allowed", "audience not allowed",
    "grant not registered", "query string", "repeated scope", "unknown parameter",
    "empty scope", "two methods", "not form encoded", "NUL in scope", "bad utf-8",
])
def test_what_the_fast_path_does_not_answer_gets_flasks_answer(app, slow_app, flask_seen,
                                                               case):
    meta, secret = _cached_client(app)
    other, other_secret = _cached_client(app, grant_types=["client_credentials"])
    cid = meta["client_id"]
    path, headers, body = endpoints.TOKEN, basic(cid, secret), "grant_type=client_credentials"
    content_type = "application/x-www-form-urlencoded"
    if case == "wrong secret":
        headers = basic(cid, secret + "x")
    elif case == "unknown client":
        headers = basic("no-such-client", secret)
    elif case == "scope not allowed":
        body += "&scope=admin"
    elif case == "audience not allowed":
        body += "&resource=https%3A%2F%2Fevil.example"
    elif case == "grant not registered":
        body = "grant_type=authorization_code&code=abc"
    elif case == "query string":
        path += "?scope=read"
    elif case == "repeated scope":
        body += "&scope=read&scope=write"
    elif case == "unknown parameter":
        body += "&audience=x"
    elif case == "empty scope":
        body += "&scope="
    elif case == "two methods":
        body += f"&client_id={cid}&client_secret={secret}"
    elif case == "not form encoded":
        content_type = "text/plain"
    elif case == "NUL in scope":
        body += "&scope=read%00"
    elif case == "bad utf-8":
        body += "&scope=%ff"
    flask_seen.clear()
    fast = app.test_client().post(path, data=body, headers={**headers,
                                                            "Content-Type": content_type})
    slow = slow_app.test_client().post(path, data=body, headers={**headers,
                                                                 "Content-Type": content_type})
    assert flask_seen == [endpoints.TOKEN]  # handed on, and answered there
    assert fast.status_code == slow.status_code
    assert _headers(fast) == _headers(slow)
    if fast.status_code == 200:  # Flask ignores the unknown parameter and the query string
        assert case in ("unknown parameter", "query string", "repeated scope")
        return
    assert fast.get_json() == slow.get_json()


def test_the_callers_limit_counts_each_request_once(app, flask_seen):
    meta, secret = register(app, scope="read", default_scope="read")
    auth = basic(meta["client_id"], secret)
    app.extensions["authserver"].extra["limits"].items["token"] = _limit("5/minute")
    statuses = [app.test_client().post(endpoints.TOKEN, data=CC, headers=auth).status_code
                for _ in range(7)]
    # The first went through Flask (cache miss), three through the fast path, the sixth
    # was refused by the fast path's hit and answered (429, audited) by Flask.
    assert statuses == [200] * 5 + [429] * 2
    assert flask_seen == [endpoints.TOKEN] * 3
    assert len(_events(app, "token.issued")) == 5
    refused = _events(app, "ratelimit.exceeded")
    assert len(refused) == 1 and refused[0].client_id == meta["client_id"]


def test_an_address_over_the_anonymous_limit_is_refused_before_the_fast_path(app, flask_seen):
    meta, secret = _cached_client(app)
    lim = app.extensions["authserver"].extra["limits"]
    lim.items["token"] = _limit("3/minute")
    for _ in range(3):  # unauthenticated failures from this address
        bad = app.test_client().post(endpoints.TOKEN, data=CC, headers=basic("x", "y"))
        assert bad.status_code == 401
    flask_seen.clear()
    response = app.test_client().post(endpoints.TOKEN, data=CC,
                                      headers=basic(meta["client_id"], secret))
    assert response.status_code == 429 and flask_seen == [endpoints.TOKEN]


@pytest.mark.settings(trusted_proxies=1)
def test_the_address_allow_list_sees_the_proxied_address(app, flask_seen):
    meta, secret = _cached_client(app, ip_allowlist=["10.0.0.0/8", "127.0.0.1/32"])
    auth = basic(meta["client_id"], secret)
    flask_seen.clear()
    inside = app.test_client().post(endpoints.TOKEN, data=CC,
                                    headers={**auth, "X-Forwarded-For": "10.1.2.3"})
    assert inside.status_code == 200 and flask_seen == []
    assert _events(app, "token.issued")[-1].ip == "10.1.2.3"
    outside = app.test_client().post(endpoints.TOKEN, data=CC,
                                     headers={**auth, "X-Forwarded-For": "192.0.2.7"})
    assert outside.status_code == 401 and flask_seen == [endpoints.TOKEN]


def test_a_refused_audit_write_refuses_the_token_as_flask_does(app, slow_app, flask_seen):
    meta, secret = _cached_client(app)
    auth = basic(meta["client_id"], secret)
    slow_app.test_client().post(endpoints.TOKEN, data=CC, headers=auth)  # cached there too
    writers = [a.extensions["authserver"].audit_writer for a in (app, slow_app)]

    def refuse(event):
        from authserver.audit_writer import AuditUnavailable
        raise AuditUnavailable("audit write failed")

    for writer in writers:
        writer.write = refuse
    flask_seen.clear()
    fast = app.test_client().post(endpoints.TOKEN, data=CC, headers=auth)
    slow = slow_app.test_client().post(endpoints.TOKEN, data=CC, headers=auth)
    assert flask_seen == []
    assert fast.status_code == slow.status_code == 503
    assert _headers(fast) == _headers(slow)
    fast_body, slow_body = fast.get_json(), slow.get_json()
    assert fast_body.pop("request_id") == fast.headers["X-Request-ID"]
    slow_body.pop("request_id")
    assert fast_body == slow_body == {"error": "temporarily_unavailable",
                                      "error_description": "try again later"}
    assert b"access_token" not in fast.get_data()


def test_introspection_answers_match_and_revocation_is_immediate(app, slow_app, flask_seen):
    meta, secret = _cached_client(app, scope="read", default_scope="read")
    rs, rs_secret = _cached_client(app, client_name="resource server")
    token = app.test_client().post(endpoints.TOKEN, data=CC,
                                   headers=basic(meta["client_id"], secret)).get_json()
    token = token["access_token"]
    rs_auth = basic(rs["client_id"], rs_secret)
    app.test_client().post(endpoints.INTROSPECTION, data={"token": token}, headers=rs_auth)
    flask_seen.clear()
    for hint in (None, "access_token", "refresh_token"):
        form = {"token": token, **({"token_type_hint": hint} if hint else {})}
        fast = app.test_client().post(endpoints.INTROSPECTION, data=form, headers=rs_auth)
        slow = slow_app.test_client().post(endpoints.INTROSPECTION, data=form,
                                           headers=rs_auth)
        assert fast.status_code == slow.status_code == 200
        assert fast.get_data() == slow.get_data()
        assert _headers(fast) == _headers(slow)
        assert fast.get_json()["active"] is True
    assert flask_seen == []
    revoked = app.test_client().post(endpoints.REVOCATION, data={"token": token},
                                     headers=basic(meta["client_id"], secret))
    assert revoked.status_code == 200
    for target in (app, slow_app):
        answer = target.test_client().post(endpoints.INTROSPECTION, data={"token": token},
                                           headers=rs_auth)
        assert answer.get_json() == {"active": False}
    # A forged token (our header, a wrong signature) is inactive on both paths too.
    forged = token.rsplit(".", 1)[0] + ".AAAA"
    for target in (app, slow_app):
        answer = target.test_client().post(endpoints.INTROSPECTION, data={"token": forged},
                                           headers=rs_auth)
        assert answer.get_data() == b'{"active":false}\n'


def _both_answer(app, slow_app, flask_seen, form, headers, fast: bool) -> dict:
    """Introspect on both paths; assert equal answers and whether the fast path answered."""
    flask_seen.clear()
    answer = app.test_client().post(endpoints.INTROSPECTION, data=form, headers=headers)
    slow = slow_app.test_client().post(endpoints.INTROSPECTION, data=form, headers=headers)
    assert (answer.status_code, answer.get_data()) == (slow.status_code, slow.get_data())
    assert _headers(answer) == _headers(slow)
    assert flask_seen == ([] if fast else [endpoints.INTROSPECTION])
    return answer.get_json()


@pytest.mark.parametrize("change", ["disabled", "tokens revoked", "deleted"])
def test_fast_introspection_reads_the_clients_state_fresh(app, slow_app, flask_seen, change):
    """The fast path's own query (access_tokens.client_token_active, a driver connection):
    a client disabled, deleted or with its tokens revoked after issuance makes its tokens
    inactive on the next introspection, as on the Flask path."""
    meta, secret = _cached_client(app, scope="read", default_scope="read")
    rs, rs_secret = _cached_client(app, client_name="resource server")
    rs_auth = basic(rs["client_id"], rs_secret)
    token = app.test_client().post(endpoints.TOKEN, data=CC, headers=basic(
        meta["client_id"], secret)).get_json()["access_token"]
    form = {"token": token}
    assert _both_answer(app, slow_app, flask_seen, form, rs_auth, fast=True)["active"] is True
    later = datetime.now(UTC) + timedelta(seconds=5)
    values = {"disabled": {"enabled": False}, "tokens revoked": {"tokens_revoked_before": later},
              "deleted": {"deleted_at": later}}[change]
    with app.extensions["authserver"].engine.begin() as conn:
        conn.execute(update(Client).where(Client.client_id == meta["client_id"])
                     .values(**values))
    assert _both_answer(app, slow_app, flask_seen, form, rs_auth, fast=True) == {
        "active": False}


def test_fast_introspection_of_tokens_it_need_not_read(app, slow_app, flask_seen):
    """A forged or expired JWT is inactive without a query (answered fast); a token of a
    user or of a refresh family has more state to read: Flask answers it, counted once."""
    meta, secret = _cached_client(app, scope="read", default_scope="read")
    rs, rs_secret = _cached_client(app, client_name="resource server")
    rs_auth = basic(rs["client_id"], rs_secret)
    svc = app.extensions["authserver"]
    token = app.test_client().post(endpoints.TOKEN, data=CC, headers=basic(
        meta["client_id"], secret)).get_json()["access_token"]
    forged = token.rsplit(".", 1)[0] + ".AAAA"
    expired = svc.signer.sign({**jwt.decode(token, options={"verify_signature": False}),
                               "exp": int(time.time()) - 1}, alg="ES256", typ="at+jwt")
    for inactive in (forged, expired):
        assert _both_answer(app, slow_app, flask_seen, {"token": inactive}, rs_auth,
                            fast=True) == {"active": False}
    client = svc.clients.cached(meta["client_id"])
    users = access_tokens.issue(svc, client, subject="no-such-user", scope="read",
                                audience=svc.settings.issuer).token
    family = access_tokens.issue(svc, client, subject=meta["client_id"], scope="read",
                                 audience=svc.settings.issuer, grant_id="no-such-family").token
    for handed_on in (users, family):
        assert _both_answer(app, slow_app, flask_seen, {"token": handed_on}, rs_auth,
                            fast=False) == {"active": False}
    # Counted once each: two fast answers and one handed-on request, then the limit.
    svc.extra["limits"].items["introspection"] = _limit("3/minute")
    statuses = [app.test_client().post(endpoints.INTROSPECTION, data={"token": t},
                                       headers=rs_auth).status_code
                for t in (forged, users, token, expired)]
    assert statuses == [200, 200, 200, 429]


def test_introspection_the_fast_path_hands_on(app, slow_app, flask_seen):
    rs, rs_secret = _cached_client(app, client_name="resource server")
    rs_auth = basic(rs["client_id"], rs_secret)
    for form in ({"token": "opaque-refresh-token"}, {}, {"token": "a.b.c", "extra": "1"}):
        flask_seen.clear()
        fast = app.test_client().post(endpoints.INTROSPECTION, data=form, headers=rs_auth)
        slow = slow_app.test_client().post(endpoints.INTROSPECTION, data=form,
                                           headers=rs_auth)
        assert flask_seen == [endpoints.INTROSPECTION]
        assert (fast.status_code, fast.get_data()) == (slow.status_code, slow.get_data())
    # A public client may not introspect (RFC 7662 §2.1): refused by Flask.
    public, _ = register(app, token_endpoint_auth_method="none",
                         grant_types=["authorization_code"],
                         redirect_uris=["https://rp.example.test/callback"])
    refused = app.test_client().post(endpoints.INTROSPECTION,
                                     data={"token": "a.b.c", "client_id": public["client_id"]})
    assert refused.status_code == 401


@pytest.mark.parametrize("path", [endpoints.JWKS, endpoints.OPENID_CONFIGURATION,
                                  endpoints.OAUTH_METADATA])
def test_well_known_documents_are_flasks_bytes(app, slow_app, flask_seen, path):
    fast = app.test_client().get(path)
    slow = slow_app.test_client().get(path)
    assert flask_seen == []
    assert fast.status_code == slow.status_code == 200
    assert fast.get_data() == slow.get_data()
    assert _headers(fast) == _headers(slow)
    assert fast.headers["Cache-Control"].startswith("public, max-age=")
    head = app.test_client().head(path)  # HEAD: Flask's
    assert head.status_code == 200 and flask_seen == [path]


@pytest.mark.settings(issuer="https://auth.example.test")
def test_https_issuer_gets_hsts_on_the_fast_path(app, flask_seen):
    response = app.test_client().get(endpoints.JWKS, base_url="https://auth.example.test")
    assert flask_seen == []
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_fast_answers_are_in_the_metrics(app):
    meta, secret = _cached_client(app)
    for _ in range(2):
        app.test_client().post(endpoints.TOKEN, data=CC, headers=basic(meta["client_id"],
                                                                       secret))
    text = app.test_client().get("/metrics").get_data(as_text=True)
    line = next(x for x in text.splitlines() if x.startswith("authserver_http_requests_total{")
                and f'endpoint="{endpoints.TOKEN}"' in x and 'status="200"' in x)
    assert float(line.rsplit(" ", 1)[1]) >= 3


def test_fast_path_off_sends_everything_to_flask(slow_app):
    seen = _reaching_flask(slow_app)
    meta, secret = _cached_client(slow_app)
    slow_app.test_client().post(endpoints.TOKEN, data=CC, headers=basic(meta["client_id"],
                                                                        secret))
    slow_app.test_client().get(endpoints.JWKS)
    assert seen == [endpoints.TOKEN, endpoints.TOKEN, endpoints.JWKS]


def _limit(text: str):
    from limits import parse

    return parse(text)


@pytest.mark.settings(max_body_bytes=40)
def test_a_body_over_the_operators_limit_is_flasks_413(app, flask_seen):
    meta, secret = _cached_client(app)
    flask_seen.clear()
    response = app.test_client().post(endpoints.TOKEN, data={**CC, "scope": "read write"},
                                      headers=basic(meta["client_id"], secret))
    assert response.status_code == 413 and flask_seen == [endpoints.TOKEN]
