"""Settings: one frozen, validated object built from ``AUTHSERVER_*`` environment variables.

Nothing else in the package reads ``os.environ``. Every setting is documented here, where it
is defined; README's settings table mirrors this file. A bad value raises ``ConfigError`` whose
message is one line naming the variable, and start-up stops there.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

PREFIX = "AUTHSERVER_"


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the variable."""


def _setting(default, doc: str, parse=None):
    return field(default=default, metadata={"doc": doc, "parse": parse})


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{PREFIX}{name}: expected true or false, got {raw!r}")


def _parse_int(name: str, raw: str, minimum: int = 0) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{PREFIX}{name}: expected a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{PREFIX}{name}: must be at least {minimum}, got {value}")
    return value


_RATE = re.compile(r"^\s*\d+\s*(/|per)\s*\d*\s*[a-z]+\s*$", re.IGNORECASE)


def _parses_as_rate(value: str) -> bool:
    from limits import parse  # what ratelimit.py will build from it

    try:
        parse(value)
    except ValueError:
        return False
    return True


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_DB_SCHEMES = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Settings:
    issuer: str = _setting(
        "http://127.0.0.1:8000",
        "Issuer URL (iss of every token). https:// unless the host is loopback; no query or "
        "fragment; a trailing slash is removed.",
    )
    database_url: str = _setting(
        "sqlite:///var/authserver.db",
        "SQLAlchemy URL. sqlite (embedded default, relative paths are relative to the working "
        "directory) or postgresql+psycopg:// for production.",
    )
    ratelimit_storage_url: str = _setting(
        "memory://", "Flask-Limiter storage: memory:// for one process, redis://… for several."
    )
    keys_dir: str = _setting(
        "keys/",
        "Directory for key material that is not in the database: the key-encryption keys "
        "(file kek) and the secret pepper (file pepper), both created by `authserver init` "
        "with mode 0600.",
    )
    kek: str = _setting(
        "",
        "Key-encryption keys given by environment instead of keys_dir/kek: comma-separated "
        "`id:base64url(32 bytes)`; the first encrypts, all decrypt (rotation of the KEK).",
    )
    pepper: str = _setting(
        "",
        "Secret pepper for HMAC digests of client secrets, tokens and codes, given by "
        "environment instead of keys_dir/pepper (base64url, at least 32 bytes).",
    )
    access_token_ttl: int = _setting(600, "Access token lifetime, seconds.")
    refresh_token_ttl: int = _setting(2592000, "Refresh token lifetime, seconds (30 days).")
    id_token_ttl: int = _setting(600, "ID token lifetime, seconds.")
    code_ttl: int = _setting(60, "Authorization code lifetime, seconds.")
    session_ttl: int = _setting(
        28800,
        "Browser session lifetime, seconds (8 hours): after it the person signs in again.",
    )
    max_client_token_ttl: int = _setting(
        86400,
        "Upper bound for a client's access_token_ttl override, seconds. Retired signing keys "
        "stay published this long (or the global TTLs, whichever is larger).",
    )
    key_rotation_days: int = _setting(
        30, "Automatic signing-key rotation period in days; 0 turns the schedule off."
    )
    jwks_max_age: int = _setting(
        300,
        "Cache lifetime (seconds) announced on the JWKS. A pending key is published at least "
        "this long before scheduled rotation lets it sign.",
    )
    key_refresh_seconds: int = _setting(
        2,
        "How often each process re-reads the key set's version from the database; bounds the "
        "time until every instance signs with a newly promoted key (must be below 5).",
    )
    client_cache_seconds: int = _setting(
        1,
        "Each process caches clients and re-reads their change counter at most this often: a "
        "client change made elsewhere is in force everywhere within this many seconds (0: "
        "checked before every request).",
    )
    fast_path: bool = _setting(
        True,
        "Answer successful client-credentials token requests, JWT introspections, the JWKS and "
        "discovery in front of Flask (measured several times faster; README, Performance). "
        "false: every request through Flask and Authlib.",
    )
    access_token_alg: str = _setting(
        "ES256", "Signing algorithm of access tokens: ES256 (fast) or RS256."
    )
    max_body_bytes: int = _setting(65536, "Larger request bodies get 413.")
    ratelimit_login: str = _setting(
        "5/5minutes",
        "Failed logins per (username, client IP). While a pair is over it, even the right "
        "password gets 429; other IPs are unaffected, so one IP cannot lock a victim out.",
    )
    ratelimit_login_ip: str = _setting(
        "30/minute", "Login form posts per client IP (CSRF-refused posts count here)."
    )
    ratelimit_token: str = _setting(
        "300/minute",
        "Token endpoint requests per authenticated client (revocation has a bucket of the "
        "same size); requests that authenticate no client count per client IP.",
    )
    ratelimit_introspection: str = _setting(
        "600/minute",
        "Introspection requests per authenticated client (resource servers); requests that "
        "authenticate no client count per client IP.",
    )
    ratelimit_admin: str = _setting(
        "120/minute",
        "Admin API requests per caller (the admin client; per client IP without a valid "
        "token).",
    )
    ratelimit_key_prefix: str = _setting(
        "authserver",
        "Prefix of every rate-limit key in the storage: deployments (or test runs) sharing one "
        "Redis keep apart.",
    )
    trusted_proxies: int = _setting(
        0, "Reverse-proxy hops whose X-Forwarded-For/-Proto are trusted; 0 trusts none."
    )
    allow_private_jwks_uri: bool = _setting(
        False, "Let clients' jwks_uri point at loopback/private addresses (off: SSRF guard)."
    )
    log_level: str = _setting("INFO", "Application log level (the authlib logger stays at INFO+).")
    log_format: str = _setting(
        "text",
        "Log format on stderr: text (one readable line per record) or json (one JSON object "
        "per line with time, level, logger, message, request_id; gunicorn's access log too). "
        "Secrets are redacted in both.",
    )
    db_pool_size: int = _setting(
        5,
        "PostgreSQL connections each worker process keeps open (SQLAlchemy pool_size); at "
        "least the worker's threads. An instance opens up to workers × (this + "
        "DB_MAX_OVERFLOW); keep the sum over all instances below the server's "
        "max_connections.",
    )
    db_max_overflow: int = _setting(
        5, "Extra PostgreSQL connections a worker may open under bursts, closed when idle."
    )
    audit_group_commit_wait_us: int = _setting(
        2000,
        "Group commit of the audit relay: while the workers are busy and issuances' events "
        "arrive together, the longest (microseconds) a batch waits for more before it is "
        "written (fewer, larger commits: README, Performance). Events arriving alone, or "
        "while workers have idle threads, never wait. 0: never wait.",
    )
    worker_threads: int = _setting(
        0,
        "Internal: set by `authserver serve` (and deploy/gunicorn.conf.py) for its workers, "
        "the request threads of each worker: a worker counts as busy for the audit relay's "
        "group commit once all of them (or four) are in requests. 0: not known (four).",
    )
    audit_relay_socket: str = _setting(
        "",
        "Internal: set by `authserver serve` (and deploy/gunicorn.conf.py) for its workers, "
        "the Unix socket of the server's audit relay. Unset: each process runs its own relay "
        "on a thread.",
    )

    # -- derived -------------------------------------------------------------------------

    @property
    def issuer_is_https(self) -> bool:
        return self.issuer.startswith("https://")

    @property
    def max_token_lifetime(self) -> int:
        """Longest life of anything a signing key signs: how long a retired key stays."""
        return max(self.access_token_ttl, self.id_token_ttl, self.max_client_token_ttl)

    @property
    def keys_path(self) -> Path:
        return Path(self.keys_dir)

    # -- construction ---------------------------------------------------------------------

    def __post_init__(self) -> None:
        object.__setattr__(self, "issuer", _validate_issuer(self.issuer))
        _validate_database_url(self.database_url)
        _validate_storage_url(self.ratelimit_storage_url)
        for name in ("ratelimit_login", "ratelimit_login_ip", "ratelimit_token",
                     "ratelimit_introspection", "ratelimit_admin"):
            if not _RATE.match(getattr(self, name)) or not _parses_as_rate(getattr(self, name)):
                raise ConfigError(
                    f"{PREFIX}{name.upper()}: expected a rate like 5/minute, "
                    f"got {getattr(self, name)!r}"
                )
        for name in ("access_token_ttl", "refresh_token_ttl", "id_token_ttl", "code_ttl",
                     "session_ttl", "max_client_token_ttl", "max_body_bytes", "jwks_max_age"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{PREFIX}{name.upper()}: must be at least 1")
        if not 1 <= self.key_refresh_seconds <= 4:
            raise ConfigError(f"{PREFIX}KEY_REFRESH_SECONDS: must be between 1 and 4")
        if self.access_token_alg not in ("ES256", "RS256"):
            raise ConfigError(f"{PREFIX}ACCESS_TOKEN_ALG: must be ES256 or RS256")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.ratelimit_key_prefix):
            raise ConfigError(f"{PREFIX}RATELIMIT_KEY_PREFIX: letters, digits, _ . - only")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"{PREFIX}LOG_LEVEL: must be DEBUG, INFO, WARNING or ERROR")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"{PREFIX}LOG_FORMAT: must be text or json")
        if self.db_pool_size < 1:
            raise ConfigError(f"{PREFIX}DB_POOL_SIZE: must be at least 1")
        if not 0 <= self.worker_threads <= 4096:
            raise ConfigError(f"{PREFIX}WORKER_THREADS: between 0 and 4096")
        if not 0 <= self.audit_group_commit_wait_us <= 100_000:
            raise ConfigError(f"{PREFIX}AUDIT_GROUP_COMMIT_WAIT_US: between 0 and 100000 "
                              "(0.1 s)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> Settings:
        """Build settings from ``AUTHSERVER_*`` variables; ``overrides`` win (tests)."""
        environ = os.environ if environ is None else environ
        values: dict = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(PREFIX + f.name.upper())
            if raw is None:
                continue
            values[f.name] = _convert(f, raw)
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes) -> Settings:
        return dataclasses.replace(self, **changes)


def _convert(f: dataclasses.Field, raw: str):
    name = f.name.upper()
    if f.type in ("bool", bool):
        return _parse_bool(name, raw)
    if f.type in ("int", int):
        return _parse_int(name, raw)
    return raw.strip()


def _validate_issuer(issuer: str) -> str:
    name = PREFIX + "ISSUER"
    parts = urlsplit(issuer)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name}: expected an http(s) URL, got {issuer!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"{name}: must not have a query or fragment")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(f"{name}: must use https:// unless the host is loopback")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigError(f"{name}: invalid port in {issuer!r}") from None
    return issuer.rstrip("/")


def _validate_database_url(url: str) -> None:
    name = PREFIX + "DATABASE_URL"
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"{name}: not a database URL") from None
    if parsed.get_backend_name() not in _DB_SCHEMES:
        raise ConfigError(
            f"{name}: unsupported database {parsed.get_backend_name()!r} (sqlite or postgresql)"
        )
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() not in (
        "psycopg",
        "postgresql",  # bare postgresql:// is rewritten to psycopg in db.py
    ):
        raise ConfigError(f"{name}: use postgresql+psycopg:// (psycopg 3)")


def _validate_storage_url(url: str) -> None:
    scheme = urlsplit(url).scheme
    if scheme not in ("memory", "redis", "rediss", "redis+sentinel", "redis+cluster"):
        raise ConfigError(f"{PREFIX}RATELIMIT_STORAGE_URL: expected memory:// or redis://…")


def describe() -> list[tuple[str, object, str]]:
    """(variable, default, doc) for every setting: README and `authserver --help` use it."""
    return [
        (PREFIX + f.name.upper(), f.default, f.metadata.get("doc", ""))
        for f in dataclasses.fields(Settings)
    ]
