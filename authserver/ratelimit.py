"""Rate limits: Flask-Limiter's storage and strategy, our named policies, their keys.

One ``Limits`` object per app (``app.extensions["authserver"].extra["limits"]``) wraps a
Flask-Limiter ``Limiter`` on ``AUTHSERVER_RATELIMIT_STORAGE_URL`` (``memory://`` for one
process, Redis for several instances: the counters are then shared). We call its strategy
(``hit``/``test`` with a ``RateLimitItem``) directly rather than decorating routes, because
our keys are known only part-way through a request (after client authentication, after a
login failed).

Policies and keys (settings in config.py):

- ``login``: failed logins per (username, client IP). Only failures count; while the pair is
  over the limit every post for it is refused, the right password included, so guessing
  stops. Keyed by the pair, not the username alone: a per-username lock would let anyone
  lock a victim out indefinitely from one IP. From other addresses the victim (and anyone)
  still signs in; an attacker with many addresses is slowed by ``login_ip`` instead.
- ``login_ip``: login form posts per client IP, every post (CSRF-refused ones too: they
  never reach a username).
- ``token``/``revocation``/``introspection``/``admin``: per authenticated caller (client id),
  counted when it is authenticated, so nobody spends another client's budget by presenting
  its client_id. Requests that authenticate nobody (bad secrets, junk) count per client IP
  against the same rate; an exhausted IP is refused before any work.

The client IP is ``request.remote_addr``: the socket peer, or what ProxyFix took from
``AUTHSERVER_TRUSTED_PROXIES`` hops (never X-Forwarded-For by default).
Each refusal is audited as ``ratelimit.exceeded`` at most once per key per window (a second
one-per-window item in the same storage decides), so a flood cannot flood the audit table.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

from authlib.oauth2.base import OAuth2Error
from flask import Flask, g, render_template, request
from flask_limiter import Limiter
from limits import RateLimitItem, RateLimitItemPerSecond, parse
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug.exceptions import HTTPException

from . import audit, metrics, ratelimit_memory
from .config import Settings
from .db import transaction
from .errors import json_error
from .extensions import db_session, services

log = logging.getLogger("authserver.ratelimit")

# Endpoint name -> the policy of its authenticated callers.
CALLER_POLICIES = {
    "oauth.token": "token",
    "oauth.revoke": "revocation",
    "oauth.introspect": "introspection",
}
ADMIN_BLUEPRINT = "admin_api"
REDIS_TIMEOUT = 0.5  # seconds a Redis operation or connection may take (Redis answers in ~1 ms)
DOWN_SECONDS = 5.0  # after a storage failure, this process's memory decides this long
# Redis: short socket timeouts and no retries (redis-py waits 5 s by default), so that a Redis
# gone dark is noticed within REDIS_TIMEOUT and the fallback takes over.
REDIS_OPTIONS = {"socket_connect_timeout": REDIS_TIMEOUT, "socket_timeout": REDIS_TIMEOUT,
                 "retry": Retry(NoBackoff(), 0)}


class RateLimited(HTTPException):
    """429; ``page`` picks an HTML page (browser forms) over JSON."""

    code = 429

    def __init__(self, retry_after: int, page: bool = False):
        super().__init__("rate limit exceeded")
        self.retry_after, self.page = retry_after, page


class TooManyRequestsError(OAuth2Error):
    """The same refusal raised inside Authlib's flow, shaped by the OAuth server (no-store)."""

    error = "too_many_requests"
    status_code = 429

    def __init__(self, retry_after: int):
        super().__init__("rate limit exceeded, retry later")
        self.retry_after = retry_after

    def get_headers(self):
        return [*super().get_headers(), ("Retry-After", str(self.retry_after))]


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0


class Limits:
    def __init__(self, settings: Settings):
        self.prefix = settings.ratelimit_key_prefix
        in_memory = settings.ratelimit_storage_url.startswith("memory://")
        # Flask-Limiter builds the storage and the strategy. It is bound to a private app, not
        # ours: no route carries a Flask-Limiter limit (our hooks below apply the policies),
        # and its per-request hooks cost about 0.1 ms of CPU on every request (measured).
        self.limiter = Limiter(
            key_func=lambda: request.remote_addr or "-", app=Flask("authserver.ratelimit"),
            storage_uri=ratelimit_memory.storage_uri(settings.ratelimit_storage_url),
            # key_prefix on the Redis keys themselves: deployments sharing a Redis (and test
            # runs) stay apart and can be flushed by prefix. wrap_exceptions: one error type.
            storage_options={"key_prefix": self.prefix, "wrap_exceptions": True,
                             **({} if in_memory else REDIS_OPTIONS)},
            # Moving window: no double burst at a window boundary (matters for guessing).
            strategy="moving-window", key_prefix=self.prefix, headers_enabled=False,
        )
        self._shared = self.limiter.limiter
        # While the shared storage is down, this process's memory decides (a fresh window:
        # nobody is locked out, and guessing is still limited per process), and the storage
        # is tried again after DOWN_SECONDS: a Redis gone dark costs one request per process
        # a REDIS_TIMEOUT every DOWN_SECONDS, not every request two timeouts.
        self._fallback = None if in_memory else MovingWindowRateLimiter(
            storage_from_string(ratelimit_memory.storage_uri("memory://")))
        self._down_until = 0.0
        self.items: dict[str, RateLimitItem] = {
            "login": parse(settings.ratelimit_login),
            "login_ip": parse(settings.ratelimit_login_ip),
            "token": parse(settings.ratelimit_token),
            "revocation": parse(settings.ratelimit_token),
            "introspection": parse(settings.ratelimit_introspection),
            "admin": parse(settings.ratelimit_admin),
        }

    def _ids(self, policy: str, key: str) -> tuple[str, ...]:
        return (self.prefix, policy, key)

    def _call(self, method: str, *args):
        """``method`` of the rate limiter in use: the shared storage's, or while it is down
        this process's memory; a storage failure turns to memory at once (fail safe, not
        closed: README, Abuse resistance)."""
        if self._down_until and time.monotonic() < self._down_until:
            return getattr(self._fallback, method)(*args)
        try:
            return getattr(self._shared, method)(*args)
        except StorageError as exc:
            if self._fallback is None:
                raise
            self._down_until = time.monotonic() + DOWN_SECONDS
            # Logged once a period per process (the readiness of Redis is the operator's
            # alarm), never the key.
            log.warning("rate-limit storage unavailable (%s): this process counts in memory "
                        "for %.0f s", type(exc).__name__, DOWN_SECONDS)
            return getattr(self._fallback, method)(*args)

    def _retry_after(self, policy: str, key: str) -> int:
        reset = self._call("get_window_stats", self.items[policy], *self._ids(policy, key))
        return max(1, math.ceil(reset.reset_time - time.time()))

    def hit(self, policy: str, key: str) -> Verdict:
        """Count one request; refused when the window is already full."""
        try:
            if self._call("hit", self.items[policy], *self._ids(policy, key)):
                return Verdict(True)
            return Verdict(False, self._retry_after(policy, key))
        except StorageError as exc:
            return self._storage_down(exc)

    def test(self, policy: str, key: str) -> Verdict:
        """Would one more request be allowed? Counts nothing."""
        try:
            if self._call("test", self.items[policy], *self._ids(policy, key)):
                return Verdict(True)
            return Verdict(False, self._retry_after(policy, key))
        except StorageError as exc:
            return self._storage_down(exc)

    @staticmethod
    def _storage_down(exc: Exception) -> Verdict:
        # Memory storage failing (no fallback to turn to): allow, as a Redis outage did
        # before the fallback. Logged, never the key.
        log.warning("rate-limit storage unavailable (%s): request allowed", type(exc).__name__)
        return Verdict(True)

    def first_notice(self, policy: str, key: str, what: str = "refused") -> bool:
        """True once per policy window per key: whether to audit this refusal."""
        item = RateLimitItemPerSecond(1, self.items[policy].get_expiry())
        try:
            return self._call("hit", item, self.prefix, what, policy, key)
        except StorageError:
            return False


def limits(app: Flask | None = None) -> Limits:
    return services(app).extra["limits"]


def client_ip() -> str:
    return request.remote_addr or "-"


def digest(value: str) -> str:
    """Usernames go into shared storage hashed: a password typed into the username field
    must not sit in Redis in clear."""
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]


def audit_refusal(session, policy: str, key: str, *, actor: str = "system",
                  client_id: str | None = None) -> None:
    """Count the refusal; queue a ``ratelimit.exceeded`` event on ``session`` (first refusal
    per window only)."""
    metrics.ratelimit_hit(policy)
    if limits().first_notice(policy, key):
        audit.record(session, "ratelimit.exceeded", actor=actor, outcome="failure",
                     client_id=client_id, details={"policy": policy, "path": request.path})


def audit_refusal_now(policy: str, key: str, **fields) -> None:
    """The same, committed in a transaction of its own (refusals before any other work)."""
    session = db_session()
    with transaction(session):
        audit_refusal(session, policy, key, **fields)


# -- login: called by web/login.py -------------------------------------------------------

def _login_key(username: str) -> str:
    return f"{digest(username)}:{client_ip()}"


def _user_actor(username: str) -> str:
    from .oidc.login import find_user

    user = find_user(db_session(), username) if username else None
    return f"user:{user.id}" if user is not None else "system"


def check_login(username: str | None) -> None:
    """Every login post: count it per IP; refuse a (username, IP) pair that is locked.
    ``username=None``: the post failed CSRF and counts against the IP only."""
    lim, ip = limits(), client_ip()
    verdict = lim.hit("login_ip", ip)
    if not verdict.allowed:
        audit_refusal_now("login_ip", ip)
        raise RateLimited(verdict.retry_after, page=True)
    if username is None:
        return
    key = _login_key(username)
    verdict = lim.test("login", key)
    if not verdict.allowed:
        audit_refusal_now("login", key, actor=_user_actor(username))
        raise RateLimited(verdict.retry_after, page=True)


def login_failed(username: str) -> None:
    """Count a failed login; the failure that fills the window starts a lockout (audited)."""
    lim, key = limits(), _login_key(username)
    lim.hit("login", key)
    verdict = lim.test("login", key)
    if not verdict.allowed and lim.first_notice("login", key, "lockout"):
        session = db_session()
        with transaction(session):
            audit.record(session, "login.locked_out", actor=_user_actor(username),
                         outcome="failure", details={"retry_after": verdict.retry_after})


# -- callers of the OAuth endpoints and the admin API -------------------------------------

def _caller_policy() -> str | None:
    if request.blueprint == ADMIN_BLUEPRINT:
        return "admin"
    return CALLER_POLICIES.get(request.endpoint or "")


def on_client_authenticated(session, client) -> None:
    """client_auth.authenticate calls this once a client proved who it is."""
    policy = CALLER_POLICIES.get(request.endpoint or "")
    if policy is None:
        return
    g.ratelimit_caller = client.client_id
    verdict = limits().hit(policy, client.client_id)
    if not verdict.allowed:
        audit_refusal(session, policy, client.client_id, actor=f"client:{client.client_id}",
                      client_id=client.client_id)
        raise TooManyRequestsError(verdict.retry_after)


def _admin_caller() -> None:
    """Runs after the admin guard (which sets g.admin_actor for a valid admin token)."""
    actor = g.get("admin_actor")
    if not actor:
        return
    g.ratelimit_caller = actor
    verdict = limits().hit("admin", actor)
    if not verdict.allowed:
        audit_refusal_now("admin", actor, actor=actor, client_id=actor.removeprefix("client:"))
        raise RateLimited(verdict.retry_after)


def _anonymous_precheck() -> None:
    """Before any work: an IP whose unauthenticated requests are over the limit is refused."""
    policy = _caller_policy()
    if policy is None:
        return
    key = "ip:" + client_ip()
    verdict = limits().test(policy, key)
    if not verdict.allowed:
        g.ratelimit_caller = key
        audit_refusal_now(policy, key)
        raise RateLimited(verdict.retry_after)


def _count_anonymous(response):
    """After the request: one that authenticated nobody counts against its IP."""
    policy = _caller_policy()
    if policy is not None and not g.get("ratelimit_caller"):
        limits().hit(policy, "ip:" + client_ip())
    return response


def _respond(exc: RateLimited):
    headers = {"Retry-After": str(exc.retry_after)}
    if exc.page:
        body = render_template("error.html", title="Too many attempts",
                               message="Too many attempts. Wait a few minutes, then try again.")
        return body, 429, {**headers, "Cache-Control": "no-store",
                           "Content-Type": "text/html; charset=utf-8"}
    return json_error(429, "too_many_requests", "rate limit exceeded, retry later", headers)


def init(app: Flask) -> Limits:
    """After the blueprints are registered: our admin hook must run after the admin guard."""
    svc = services(app)
    lim = svc.extra["limits"] = Limits(svc.settings)
    svc.extra["on_client_authenticated"] = on_client_authenticated
    app.register_error_handler(RateLimited, _respond)
    app.before_request(_anonymous_precheck)
    app.after_request(_count_anonymous)
    app.before_request_funcs.setdefault(ADMIN_BLUEPRINT, []).append(_admin_caller)
    return lim
