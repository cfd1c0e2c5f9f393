"""create_app: all wiring, in a fixed order. Per-app objects live in
``app.extensions["authserver"]`` (extensions.Services); there is no module-level state."""

from __future__ import annotations

import time

from flask import Flask, g, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from . import audit, errors, logs, metrics, ratelimit, request_ids
from .audit_writer import AuditWriter
from .config import Settings
from .db import make_engine, make_session_factory
from .extensions import Services, close_db_session
from .keyring import KeySet, Signer
from .oauth.client_cache import ClientCache
from .security import material
from .security.aead import Sealer
from .security.tokens import Digester
from .web.in_flight import InFlight


def create_app(settings: Settings | None = None) -> Flask:
    # 1. Settings: validated before anything else is built.
    settings = settings or Settings.from_env()
    logs.configure(settings.log_level, settings.log_format)

    app = Flask(__name__, static_folder="web/static", template_folder="web/templates")
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        # Flask's signed session holds only the CSRF secret of the browser pages (web/browser.py).
        SESSION_COOKIE_NAME="authserver_csrf",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.issuer_is_https,
    )

    # 2. Storage and key material.
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size,
                         max_overflow=settings.db_max_overflow)
    session_factory = make_session_factory(engine)
    in_flight = InFlight(settings.worker_threads)
    mat = material.load(settings.keys_path, settings.kek, settings.pepper)
    sealer = Sealer(mat.keks)
    keyset = KeySet(session_factory, sealer, settings)
    app.extensions["authserver"] = Services(
        settings=settings,
        engine=engine,
        session_factory=session_factory,
        sealer=sealer,
        digester=Digester(mat.pepper),
        keyset=keyset,
        signer=Signer(keyset),
        audit_sealer=audit.Sealer(session_factory),
        clients=ClientCache(engine, settings.client_cache_seconds),
        audit_writer=AuditWriter(engine, settings.audit_relay_socket,
                                 settings.audit_group_commit_wait_us / 1e6, in_flight),
    )
    app.secret_key = Digester(mat.pepper).digest("flask-session", "cookie-signing-key")
    app.session_interface = _CookieSessions()

    # 3. Per-request context: request id, audit context, session teardown, metrics; then
    #    the body size limit and NUL check (before any view reads), the security headers.
    _install_request_hooks(app)
    errors.register(app)
    from .web import headers, request_guard

    request_guard.register(app)
    headers.register(app)

    # 4. Features, each a blueprint over its own services.
    from .web import fast_path, ops, well_known

    app.register_blueprint(well_known.bp)
    app.register_blueprint(ops.bp)
    for register in _feature_registrars():
        register(app)

    # 5. Rate limits last: their admin hook runs after the admin blueprint's guard.
    ratelimit.init(app)

    # 6. In front of Flask: the fast path for the commonest successful requests (web/
    #    fast_path.py), and outside it the client address and scheme, from only as many
    #    proxy hops as the operator trusts.
    fast_path.install(app)
    app.wsgi_app = in_flight.wrap(app.wsgi_app)  # the load the audit writer reports
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)
    return app


class _CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the signing serializer built once per app instead
    of on every request (Flask opens the session for every request, API calls included)."""

    _serializer = None

    def get_signing_serializer(self, app: Flask):
        if self._serializer is None:
            self._serializer = super().get_signing_serializer(app)
        return self._serializer


def _feature_registrars():
    """Blueprints added by later features register here, in order."""
    from .web import admin_api, authorize, login, oauth, oidc

    return [oauth.register, login.register, authorize.register, oidc.register,
            admin_api.register]


def _install_request_hooks(app: Flask) -> None:
    @app.before_request
    def _begin() -> None:
        g.started = time.perf_counter()
        g.request_id = request_ids.accept(request.headers.get("X-Request-ID", ""))
        g.audit_token = audit.current_context.set(
            audit.RequestContext(ip=request.remote_addr, request_id=g.request_id)
        )
        app.extensions["authserver"].tick()

    @app.after_request
    def _finish(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
        if "started" in g:
            metrics.LATENCY.labels(endpoint).observe(time.perf_counter() - g.started)
        if response.status_code >= 400:
            metrics.error(_error_code(response))
        return response

    @app.teardown_request
    def _teardown(exc=None) -> None:
        close_db_session(exc)
        token = g.pop("audit_token", None)
        if token is not None:
            audit.current_context.reset(token)


def _error_code(response) -> str:
    """The RFC 6749/6750/7591 ``error`` of a JSON error body, else ``http_<status>``."""
    if response.is_json and not response.is_streamed:
        body = response.get_json(silent=True)
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            return body["error"]
    return f"http_{response.status_code}"
