"""The fast path: the commonest successful requests, answered in front of Flask.

Measured (README, Performance): Flask, Werkzeug and Authlib's request plumbing cost about
1 ms of CPU per token request, several times the work of the token itself. This WSGI layer
sits in front of the Flask app and answers four kinds of request on its own:

- ``POST /oauth2/token`` with ``grant_type=client_credentials`` (client_secret_basic or
  client_secret_post, client already in this process's cache; over https or to a loopback
  host, the rule the Flask path applies: web/request_guard.py);
- ``POST /oauth2/introspect`` of a client-credentials JWT, or of a JWT that fails its
  signature, issuer or expiry check (same authentication; one query on a driver connection);
- ``GET`` of the JWKS and of the two discovery documents (pre-built bytes).

Every decision is taken by the functions the Flask path calls (client_auth, scopes,
client_credentials, introspection, the rate limiter): only the HTTP plumbing is its own. And it
answers only requests that succeed. Anything else — an uncached or unknown client, a refused
secret, a scope or audience not allowed, a rate limit reached, a repeated or unknown
parameter, a query string, a chunked or large body, HEAD — is handed to Flask untouched (the
body already read goes with it) and gets the canonical answer and audit events there. Nothing
is counted twice: the caller's rate limit is hit as the last check before issuing, and a
refused hit counts nothing.

``AUTHSERVER_FAST_PATH=false`` sends every request through Flask. tests/integration/
test_fast_path.py sends the same requests through both and compares the answers.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

from authlib.oauth2.base import OAuth2Error
from flask import Flask
from werkzeug.http import HTTP_STATUS_CODES

from .. import audit, endpoints, errors, metrics, request_ids
from ..oauth import access_tokens, client_auth, client_credentials, introspection, scopes
from ..oauth.server import NO_STORE
from ..oidc import discovery
from . import headers as security_headers
from . import request_guard
from .well_known import DISCOVERY_MAX_AGE

FORM = "application/x-www-form-urlencoded"
MAX_BODY = 4096  # larger bodies are unusual here: Flask reads them
TOKEN_PARAMS = frozenset({"grant_type", "scope", "resource", "client_id", "client_secret"})
INTROSPECTION_PARAMS = frozenset({"token", "token_type_hint", "client_id", "client_secret"})
SECRET_METHODS = (client_auth.BASIC, client_auth.POST)
JSON_NO_STORE = [("Content-Type", "application/json"), *NO_STORE]


@dataclass(frozen=True)
class Answer:
    status: int
    rule: str  # the metrics label: the URL rule Flask would have matched
    body: bytes
    headers: list[tuple[str, str]]
    error: str | None = None  # the error code of a failure, for the metrics


class _Peer:
    """What client_auth.refusal reads off a request."""

    __slots__ = ("form", "remote_addr")

    def __init__(self, form: dict, remote_addr: str | None):
        self.form, self.remote_addr = form, remote_addr


class _Form:
    """A url-encoded body: each parameter once, ``resource`` possibly repeated."""

    def __init__(self, values: dict[str, str], resources: list[str]):
        self.values, self.resources = values, resources


class FastPath:
    def __init__(self, app: Flask):
        self._flask = app.wsgi_app
        self._svc = svc = app.extensions["authserver"]
        settings = svc.settings
        self._routes = {
            ("POST", endpoints.TOKEN): self._token,
            ("POST", endpoints.INTROSPECTION): self._introspect,
            ("GET", endpoints.JWKS): self._jwks,
            ("GET", endpoints.OPENID_CONFIGURATION): self._discovery,
            ("GET", endpoints.OAUTH_METADATA): self._discovery,
        }
        self._max_body = min(MAX_BODY, settings.max_body_bytes)
        self._token_url = settings.issuer + endpoints.TOKEN
        self._introspection_url = settings.issuer + endpoints.INTROSPECTION
        # What the after_request hooks add to every response (app.py, web/headers.py).
        self._common = [("X-Content-Type-Options", "nosniff"),
                        ("Referrer-Policy", "no-referrer")]
        if settings.issuer_is_https:
            self._common.append(("Strict-Transport-Security", security_headers.HSTS))
        self._jwks_headers = [("Content-Type", "application/jwk-set+json"),
                              ("Cache-Control", f"public, max-age={settings.jwks_max_age}")]
        self._discovery_body = discovery.encoded(settings)
        self._discovery_headers = [("Content-Type", "application/json"),
                                   ("Cache-Control", f"public, max-age={DISCOVERY_MAX_AGE}")]

    # -- WSGI ------------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        handler = self._routes.get((environ["REQUEST_METHOD"], environ.get("PATH_INFO")))
        if handler is None or environ.get("QUERY_STRING"):
            return self._flask(environ, start_response)
        started = time.perf_counter()
        request_id = request_ids.accept(environ.get("HTTP_X_REQUEST_ID", ""))
        self._svc.tick()
        context = audit.current_context.set(
            audit.RequestContext(ip=environ.get("REMOTE_ADDR"), request_id=request_id))
        try:
            answer = handler(environ, request_id)
        finally:
            audit.current_context.reset(context)
        if answer is None:
            return self._flask(environ, start_response)
        headers = [*answer.headers, ("Content-Length", str(len(answer.body))),
                   ("X-Request-ID", request_id), *self._common]
        start_response(f"{answer.status} {HTTP_STATUS_CODES[answer.status].upper()}", headers)
        metrics.TALLY.add(answer.rule, environ["REQUEST_METHOD"], answer.status,
                          time.perf_counter() - started)
        if answer.error is not None:
            metrics.error(answer.error)
        return [answer.body]

    # -- endpoints ----------------------------------------------------------------------------

    def _token(self, environ, request_id: str) -> Answer | None:
        if not _secure(environ):
            return None
        form = _read_form(environ, TOKEN_PARAMS, self._max_body)
        if form is None or form.values.get("grant_type") != "client_credentials":
            return None
        client = self._authenticated(environ, form, "token", self._token_url, True)
        if client is None or not client_credentials.allowed(client):
            return None
        svc = self._svc
        try:
            scope = scopes.resolve_scope(client, form.values.get("scope"))
            audience = scopes.resolve_audience(client, form.resources, svc.settings.issuer)
        except OAuth2Error:  # invalid_scope, invalid_target: Flask answers
            return None
        if not self._counted("token", client):
            return None
        try:
            body = client_credentials.issue(svc, None, client, scope, audience)
        except Exception as exc:  # noqa: BLE001 - counted already: answer, do not retry
            return _failure(endpoints.TOKEN, request_id, exc)
        # Authlib's shape (oauth/server.py handle_response): Flask's JSON, keys sorted.
        return Answer(200, endpoints.TOKEN, json.dumps(body, sort_keys=True).encode(),
                      JSON_NO_STORE)

    def _introspect(self, environ, request_id: str) -> Answer | None:
        if not _secure(environ):
            return None
        form = _read_form(environ, INTROSPECTION_PARAMS, self._max_body)
        if form is None:
            return None
        token = form.values.get("token")
        # A JWT: the refresh-token lookup cannot match it (no "." in refresh tokens), so the
        # answer is the access token's or inactive, whatever the hint says.
        if not token or token.count(".") != 2:
            return None
        client = self._authenticated(environ, form, "introspection",
                                     self._introspection_url, False)
        if client is None:
            return None
        svc = self._svc
        # Signature, issuer and expiry first (no database). A token of a user or of a refresh
        # family has more state to read: Flask answers it, before anything is counted.
        claims = access_tokens.decode(svc, token)
        if claims is not None and not access_tokens.is_client_token(claims):
            return None
        if not self._counted("introspection", client):
            return None
        body = introspection.INACTIVE
        if claims is not None:
            try:
                if access_tokens.client_token_active(svc.engine, claims):
                    body = introspection.active_body(claims)
            except Exception as exc:  # noqa: BLE001 - counted already: answer, do not retry
                return _failure(endpoints.INTROSPECTION, request_id, exc)
        return Answer(200, endpoints.INTROSPECTION, _jsonify(body), JSON_NO_STORE)

    def _jwks(self, environ, request_id: str) -> Answer:
        return Answer(200, endpoints.JWKS, self._svc.keyset.jwks_body(), self._jwks_headers)

    def _discovery(self, environ, request_id: str) -> Answer:
        return Answer(200, environ["PATH_INFO"], self._discovery_body, self._discovery_headers)

    # -- the shared steps --------------------------------------------------------------------

    def _authenticated(self, environ, form: _Form, policy: str, endpoint_url: str,
                       allow_public: bool):
        """The client, when a cached one authenticates with a secret and its address is not
        over the anonymous limit (ratelimit._anonymous_precheck); else None."""
        svc = self._svc
        auth = {"Authorization": environ.get("HTTP_AUTHORIZATION", "")}
        methods, client_id, credential = client_auth.presented(auth, form.values)
        if (len(methods) != 1 or methods[0] not in SECRET_METHODS
                or not isinstance(client_id, str) or not 0 < len(client_id) <= 200):
            return None
        client = svc.clients.cached(client_id)
        if client is None:
            return None
        remote_addr = environ.get("REMOTE_ADDR")
        if not svc.extra["limits"].test(policy, "ip:" + (remote_addr or "-")).allowed:
            return None
        reason = client_auth.refusal(svc, None, _Peer(form.values, remote_addr), methods[0],
                                     client, credential, endpoint_url, allow_public)
        return client if reason is None else None

    def _counted(self, policy: str, client) -> bool:
        """The caller's rate limit, hit last: a refused hit counts nothing, and Flask then
        answers the 429 (and audits it) as it would have."""
        return self._svc.extra["limits"].hit(policy, client.client_id).allowed



def _failure(rule: str, request_id: str, exc: Exception) -> Answer:
    """errors.py's answer to the same failure, once the request was counted (it cannot be
    handed to Flask then)."""
    status, body = errors.failure(exc, request_id)
    return Answer(status, rule, _jsonify(body), JSON_NO_STORE, body["error"])


def _jsonify(body: dict) -> bytes:
    """Flask's jsonify (compact, keys sorted, a newline)."""
    return (json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n").encode()


def _secure(environ) -> bool:
    """The transport rule the Flask path applies before any view (request_guard.secure);
    anything else goes to Flask, which refuses it."""
    return request_guard.secure(environ["wsgi.url_scheme"],
                                environ.get("HTTP_HOST") or environ.get("SERVER_NAME", ""))


def _read_form(environ, allowed: frozenset[str], limit: int) -> _Form | None:
    """The url-encoded body as werkzeug would read it, or None for anything unusual. The bytes
    read are put back for Flask either way."""
    if environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower() != FORM:
        return None
    if "HTTP_TRANSFER_ENCODING" in environ:
        return None
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    if not 0 < length <= limit:  # over AUTHSERVER_MAX_BODY_BYTES: Flask answers 413
        return None
    raw = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(raw)
    if len(raw) != length:
        return None
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None
    values: dict[str, str] = {}
    resources: list[str] = []
    for name, value in pairs:
        if name not in allowed or "\x00" in value:
            return None
        if name == "resource":
            resources.append(value)
        elif name in values:
            return None
        else:
            values[name] = value
    return _Form(values, resources)


def install(app: Flask) -> None:
    """Put the fast path in front of the Flask app (inside ProxyFix, which is added later)."""
    if app.extensions["authserver"].settings.fast_path:
        app.wsgi_app = FastPath(app)
