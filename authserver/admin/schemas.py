"""Strict parsing of client metadata (RFC 7591 §2 names plus our documented extensions).

Every field is checked for its JSON type (a bool is not an integer), its values and its
relation to the other fields; anything unknown is refused. Errors are ``MetadataError`` with
an RFC 7591 §3.2.2 code and a fixed description naming the field, never echoing the input.

Defaults on create (RFC 7591 §2 where it has one):
- ``grant_types``: ``["authorization_code"]`` (RFC 7591's default), so a client that leaves it
  out needs ``redirect_uris``; machine clients say ``["client_credentials"]``.
- ``token_endpoint_auth_method``: ``client_secret_basic`` (RFC 7591's default).
- ``id_token_signed_response_alg``: ``RS256`` (OIDC Registration's default).
- lists empty, ``scope``/``default_scope`` empty, TTLs null (server settings), ``enabled``
  true, ``skip_consent`` false.

Rules across fields:
- ``authorization_code`` needs at least one redirect URI (``invalid_redirect_uri``);
  ``refresh_token`` is only issued by the code exchange, so it needs ``authorization_code``.
- ``none`` (public client) may not use ``client_credentials`` (RFC 6749 §4.4: confidential
  clients only).
- ``private_key_jwt`` needs exactly one of ``jwks``/``jwks_uri``; other methods take neither.
- ``default_scope`` is a subset of ``scope``.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from urllib.parse import urlsplit

import jwt

from ..config import Settings, is_loopback_host

INVALID_METADATA = "invalid_client_metadata"
INVALID_REDIRECT_URI = "invalid_redirect_uri"

GRANT_TYPES = ("authorization_code", "client_credentials", "refresh_token")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
ID_TOKEN_ALGS = ("RS256", "ES256")
SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post"})

MAX_NAME = 200
MAX_URI = 2000
MAX_LIST = 50
MAX_SCOPE = 2000
MAX_REFRESH_TTL = 10 * 366 * 86400  # ten years: bounds date arithmetic
MAX_JWKS_KEYS = 10

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")
# RFC 3986 §3.1 scheme
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
# Schemes that are never a redirect target (script execution, local files, data).
_FORBIDDEN_SCHEMES = frozenset({"javascript", "data", "file", "vbscript", "about", "blob",
                                "ftp", "ws", "wss"})
# RFC 7517 / RFC 7518 §6: members that only private (or symmetric) keys carry.
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

# Types of every accepted field: (json types, nullable).
_LIST = "list"
FIELDS: dict[str, tuple[tuple[type, ...] | str, bool]] = {
    "client_name": ((str,), False),
    "grant_types": (_LIST, False),
    "response_types": (_LIST, False),
    "redirect_uris": (_LIST, False),
    "post_logout_redirect_uris": (_LIST, False),
    "scope": ((str,), False),
    "default_scope": ((str,), False),
    "allowed_audiences": (_LIST, False),
    "token_endpoint_auth_method": ((str,), False),
    "jwks": ((dict,), True),
    "jwks_uri": ((str,), True),
    "ip_allowlist": (_LIST, False),
    "access_token_ttl": ((int,), True),
    "refresh_token_ttl": ((int,), True),
    "id_token_signed_response_alg": ((str,), False),
    "skip_consent": ((bool,), False),
    "enabled": ((bool,), False),
}

DEFAULTS: dict = {
    "grant_types": ["authorization_code"],
    "redirect_uris": [],
    "post_logout_redirect_uris": [],
    "scope": "",
    "default_scope": "",
    "allowed_audiences": [],
    "token_endpoint_auth_method": "client_secret_basic",
    "jwks": None,
    "jwks_uri": None,
    "ip_allowlist": [],
    "access_token_ttl": None,
    "refresh_token_ttl": None,
    "id_token_signed_response_alg": "RS256",
    "skip_consent": False,
    "enabled": True,
}


class MetadataError(ValueError):
    """Refused metadata: ``error`` is the RFC 7591 code, ``description`` a fixed text."""

    def __init__(self, description: str, error: str = INVALID_METADATA):
        super().__init__(description)
        self.error = error
        self.description = description


def _fail(description: str, error: str = INVALID_METADATA):
    raise MetadataError(description, error)


# -- primitives ---------------------------------------------------------------------------

def has_bad_chars(value: str) -> bool:
    """Control characters (NUL included) and lone surrogates: never stored (PostgreSQL
    refuses NUL; a surrogate cannot be encoded)."""
    return any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value)


def _string(value, field: str, max_len: int, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        _fail(f"{field} must be a string")
    if not value and not allow_empty:
        _fail(f"{field} must not be empty")
    if len(value) > max_len:
        _fail(f"{field} is too long")
    if has_bad_chars(value):
        _fail(f"{field} contains control characters")
    return value


def _string_list(value, field: str, error: str = INVALID_METADATA) -> list:
    if not isinstance(value, list):
        _fail(f"{field} must be an array of strings")
    if len(value) > MAX_LIST:
        _fail(f"{field} has too many entries")
    if not all(isinstance(v, str) for v in value):
        _fail(f"{field} must be an array of strings")
    if len(set(value)) != len(value):
        _fail(f"{field} has duplicate entries", error)
    return list(value)


def _scope(value, field: str) -> str:
    value = _string(value, field, MAX_SCOPE, allow_empty=True)
    tokens = value.split(" ") if value else []
    if any(not _SCOPE_TOKEN.match(t) for t in tokens):
        _fail(f"{field} must be space-separated scope tokens (RFC 6749 section 3.3)")
    return " ".join(dict.fromkeys(tokens))


def _check_uri(value, field: str, error: str) -> str:
    if not isinstance(value, str) or not value:
        _fail(f"{field} entries must be non-empty strings", error)
    if len(value) > MAX_URI or has_bad_chars(value) or any(ch.isspace() for ch in value):
        _fail(f"{field} has an invalid URI", error)
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a bad port
    except ValueError:
        _fail(f"{field} has an invalid URI", error)
    del port
    return value if parts.scheme else _fail(f"{field} entries must be absolute URIs", error)


def redirect_uri(value, field: str = "redirect_uris") -> str:
    """RFC 6749 §3.1.2, RFC 8252 §7, RFC 9700 §4.1: absolute, no fragment; https, http only
    for loopback hosts, or a private-use scheme (reverse domain name) for native apps."""
    err = INVALID_REDIRECT_URI
    value = _check_uri(value, field, err)
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if not _SCHEME.match(parts.scheme):
        _fail(f"{field} has an invalid URI scheme", err)
    if "#" in value:
        _fail(f"{field} entries must not have a fragment", err)
    if scheme in _FORBIDDEN_SCHEMES:
        _fail(f"{field} uses a scheme that is not allowed", err)
    if scheme in ("http", "https"):
        if not parts.hostname:
            _fail(f"{field} entries must name a host", err)
        if parts.username is not None or parts.password is not None:
            _fail(f"{field} entries must not carry user information", err)
        if scheme == "http" and not is_loopback_host(parts.hostname):
            _fail(f"{field} must use https unless the host is loopback", err)
    elif "." not in scheme:
        # RFC 8252 §7.1: private-use schemes are reverse domain names (com.example.app).
        _fail(f"{field} custom schemes must be reverse domain names", err)
    return value


def audience(value) -> str:
    """RFC 8707 §2: a resource indicator is an absolute URI without a fragment."""
    value = _check_uri(value, "allowed_audiences", INVALID_METADATA)
    if "#" in value:
        _fail("allowed_audiences entries must not have a fragment")
    return value


def jwks_uri(value, settings: Settings) -> str:
    value = _check_uri(value, "jwks_uri", INVALID_METADATA)
    parts = urlsplit(value)
    if "#" in value or not parts.hostname or parts.username is not None:
        _fail("jwks_uri must be an https URL")
    if parts.scheme == "https":
        return value
    # Plain http only where the operator allows private addresses and the host is loopback
    # (development and tests); the fetcher applies its SSRF guard either way.
    if parts.scheme == "http" and settings.allow_private_jwks_uri and is_loopback_host(
            parts.hostname):
        return value
    return _fail("jwks_uri must be an https URL")


def jwks(value) -> dict:
    if not isinstance(value, dict) or set(value) != {"keys"} or not isinstance(
            value["keys"], list):
        _fail("jwks must be a JWK set: an object with a keys array")
    keys = value["keys"]
    if not keys or len(keys) > MAX_JWKS_KEYS:
        _fail("jwks must hold between 1 and 10 keys")
    for key in keys:
        if not isinstance(key, dict):
            _fail("jwks keys must be objects")
        if _PRIVATE_JWK_MEMBERS.intersection(key):
            _fail("jwks must hold public keys only")
        if key.get("kty") not in ("RSA", "EC", "OKP"):
            _fail("jwks keys must be RSA, EC or OKP public keys")
        if not all(isinstance(k, str) and isinstance(v, str | list | bool) for k, v in
                   key.items()):
            _fail("jwks keys have invalid members")
        try:
            jwt.PyJWK(key)
        except Exception:  # PyJWT raises several types for a bad key
            _fail("jwks holds a key that cannot be loaded")
    kids = [k.get("kid") for k in keys if "kid" in k]
    if len(set(map(str, kids))) != len(kids):
        _fail("jwks key ids must be unique")
    return {"keys": keys}


def cidr(value) -> str:
    if not isinstance(value, str) or len(value) > 64:
        _fail("ip_allowlist entries must be CIDR strings")
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError:
        return _fail("ip_allowlist entries must be CIDR networks without host bits")


def _ttl(value, field: str, maximum: int):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(f"{field} must be a whole number of seconds")
    if not 1 <= value <= maximum:
        _fail(f"{field} is out of range")
    return value


# -- fields -------------------------------------------------------------------------------

def _parse_field(name: str, value, settings: Settings):
    types, nullable = FIELDS[name]
    if value is None:
        if not nullable:
            _fail(f"{name} must not be null")
        return None
    if types == _LIST:
        if not isinstance(value, list):
            _fail(f"{name} must be an array")
    elif isinstance(value, bool) and bool not in types:
        _fail(f"{name} has the wrong type")
    elif not isinstance(value, types):
        _fail(f"{name} has the wrong type")

    if name == "client_name":
        return _string(value, name, MAX_NAME).strip() or _fail("client_name must not be blank")
    if name == "grant_types":
        grants = _string_list(value, name)
        if not grants:
            _fail("grant_types must not be empty")
        if any(g not in GRANT_TYPES for g in grants):
            _fail("grant_types holds an unsupported grant type")
        return grants
    if name == "response_types":
        kinds = _string_list(value, name)
        if any(k != "code" for k in kinds):
            _fail("response_types supports only code")
        return kinds
    if name in ("redirect_uris", "post_logout_redirect_uris"):
        return [redirect_uri(u, name) for u in _string_list(value, name, INVALID_REDIRECT_URI)]
    if name in ("scope", "default_scope"):
        return _scope(value, name)
    if name == "allowed_audiences":
        return [audience(a) for a in _string_list(value, name)]
    if name == "token_endpoint_auth_method":
        if value not in AUTH_METHODS:
            _fail("token_endpoint_auth_method is not supported")
        return value
    if name == "jwks":
        return jwks(value)
    if name == "jwks_uri":
        return jwks_uri(value, settings)
    if name == "ip_allowlist":
        networks = [cidr(c) for c in _string_list(value, name)]
        if len(set(networks)) != len(networks):
            _fail("ip_allowlist has duplicate entries")
        return networks
    if name == "access_token_ttl":
        return _ttl(value, name, settings.max_client_token_ttl)
    if name == "refresh_token_ttl":
        return _ttl(value, name, MAX_REFRESH_TTL)
    if name == "id_token_signed_response_alg":
        if value not in ID_TOKEN_ALGS:
            _fail("id_token_signed_response_alg must be RS256 or ES256")
        return value
    return value  # skip_consent, enabled: bools, type-checked above


def _parse_fields(data, settings: Settings) -> dict:
    if not isinstance(data, dict):
        _fail("the body must be a JSON object")
    unknown = [k for k in data if k not in FIELDS]
    if unknown:
        _fail("unknown field" if len(unknown) == 1 else "unknown fields")
    return {name: _parse_field(name, value, settings) for name, value in data.items()}


def _check_together(meta: dict, given: dict) -> None:
    grants = meta["grant_types"]
    method = meta["token_endpoint_auth_method"]
    if "authorization_code" in grants and not meta["redirect_uris"]:
        _fail("redirect_uris is required for the authorization_code grant",
              INVALID_REDIRECT_URI)
    if "refresh_token" in grants and "authorization_code" not in grants:
        _fail("the refresh_token grant needs the authorization_code grant")
    if method == "none" and "client_credentials" in grants:
        _fail("public clients (token_endpoint_auth_method none) cannot use "
              "client_credentials")
    if method == "private_key_jwt":
        if (meta["jwks"] is None) == (meta["jwks_uri"] is None):
            _fail("private_key_jwt needs exactly one of jwks and jwks_uri")
    elif meta["jwks"] is not None or meta["jwks_uri"] is not None:
        _fail("jwks and jwks_uri are only for private_key_jwt clients")
    if not set(meta["default_scope"].split()) <= set(meta["scope"].split()):
        _fail("default_scope must be a subset of scope")
    # RFC 7591 §2.1: response_types and grant_types must agree. Not stored: derived.
    if "response_types" in given:
        expected = ["code"] if "authorization_code" in grants else []
        if given["response_types"] != expected:
            _fail("response_types does not match grant_types")


def parse_create(data, settings: Settings) -> dict:
    """Full, validated metadata with defaults filled in."""
    given = _parse_fields(data, settings)
    if "client_name" not in given:
        _fail("client_name is required")
    meta = {**DEFAULTS, **given}
    _check_together(meta, given)
    meta.pop("response_types", None)
    return meta


def parse_update(data, settings: Settings, current: dict) -> dict:
    """The changed fields only, validated on their own and merged with ``current``."""
    given = _parse_fields(data, settings)
    meta = {**current, **given}
    _check_together(meta, given)
    given.pop("response_types", None)
    return given
