"""Verifier building blocks: configuration guards, challenges, header parsing, JWK parsing,
cache lifetimes and the import boundary."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

import authserver.verifier as verifier_pkg
from authserver.verifier import (
    ConfigurationError,
    InsufficientScope,
    InvalidToken,
    MissingToken,
    Verifier,
    bearer_token,
)
from authserver.verifier.checks import check_scopes, check_times, validate_scope_names
from authserver.verifier.jwks_cache import cache_lifetime
from authserver.verifier.keys import parse_jwks

ISS, AUD = "https://auth.example.test", "https://api.example.test"


@pytest.mark.parametrize("algs", [["none"], ["HS256"], ["RS256", "HS512"], ["HS384"], []])
def test_unsafe_algorithms_are_refused_at_construction(algs):
    with pytest.raises(ConfigurationError):
        Verifier(ISS, AUD, algorithms=algs)


@pytest.mark.parametrize("kwargs", [
    {"leeway": 11}, {"leeway": -1}, {"refetch_interval": 0.5}, {"refetch_interval": 0},
    {"min_cache_ttl": 0}, {"min_cache_ttl": 600, "default_cache_ttl": 300},
    {"realm": 'a"b'},
])
def test_out_of_bounds_settings_are_refused(kwargs):
    with pytest.raises(ConfigurationError):
        Verifier(ISS, AUD, **kwargs)


@pytest.mark.parametrize("issuer", [
    "http://auth.example.test", "ftp://auth.example.test", "auth.example.test", "",
])
def test_issuer_must_be_https_unless_loopback(issuer):
    with pytest.raises(ConfigurationError):
        Verifier(issuer, AUD)


def test_defaults_are_within_the_contract():
    v = Verifier(ISS, AUD)
    assert v.leeway <= 10
    assert v.jwks.refetch_interval == 10
    assert list(v.algorithms) == ["RS256", "ES256"]
    assert v.typ == "at+jwt"
    Verifier("http://127.0.0.1:9", AUD)  # loopback http is fine for development


def test_challenges_follow_rfc6750():
    err = InvalidToken("token expired", realm="orders")
    assert err.status_code == 401
    assert err.www_authenticate == (
        'Bearer realm="orders", error="invalid_token", error_description="token expired"')
    scope = InsufficientScope("orders:read orders:write")
    assert scope.status_code == 403
    assert scope.www_authenticate == (
        'Bearer realm="api", error="insufficient_scope", '
        'error_description="token lacks the required scope", scope="orders:read orders:write"')
    assert scope.to_dict()["error"] == "insufficient_scope"
    missing = MissingToken("bearer token required")
    assert missing.www_authenticate == 'Bearer realm="api"'  # RFC 6750 §3.1: no error code
    assert isinstance(missing, InvalidToken) and missing.status_code == 401


@pytest.mark.parametrize("header", [None, "", "Basic dXNlcjpwdw==", "Bearerabc", "Digest x"])
def test_no_bearer_credentials_is_a_missing_token(header):
    with pytest.raises(MissingToken):
        bearer_token(header)


@pytest.mark.parametrize("header", [
    "Bearer", "Bearer ", "Bearer  ", "Bearer a b", "Bearer a,b", 'Bearer "abc"', "Bearer ab=c",
    "Bearer é",
])
def test_empty_or_malformed_bearer_is_invalid_token(header):
    with pytest.raises(InvalidToken) as info:
        bearer_token(header)
    assert not isinstance(info.value, MissingToken)
    assert info.value.error == "invalid_token"


@pytest.mark.parametrize("header", ["Bearer abc.def.ghi", "bearer abc.def.ghi",
                                    "BEARER  abc.def.ghi", "Bearer abc.def.ghi "])
def test_bearer_scheme_is_case_insensitive(header):
    assert bearer_token(header) == "abc.def.ghi"


def test_time_checks_with_leeway():
    now = 1_000_000
    check_times({"exp": now + 1, "iat": now}, now, 5)
    check_times({"exp": now - 4, "iat": now + 4, "nbf": now + 4}, now, 5)  # inside leeway
    for claims, message in [
        ({"exp": now - 5, "iat": now}, "token expired"),
        ({"exp": now + 60, "iat": now, "nbf": now + 6}, "token not yet valid"),
        ({"exp": now + 60, "iat": now + 6}, "token issued in the future"),
        ({"iat": now}, "missing or invalid exp claim"),
        ({"exp": now + 60}, "missing or invalid iat claim"),
        ({"exp": True, "iat": now}, "missing or invalid exp claim"),
        ({"exp": "9999999999", "iat": now}, "missing or invalid exp claim"),
        ({"exp": float("inf"), "iat": now}, "missing or invalid exp claim"),
    ]:
        with pytest.raises(InvalidToken, match=message):
            check_times(claims, now, 5)


def test_scope_checks():
    check_scopes({"scope": "a b c"}, ["a", "c"])
    check_scopes({}, [])
    check_scopes({"scope": "a b"}, "b a")  # a string is a scope list, not characters
    with pytest.raises(InsufficientScope):
        check_scopes({"scope": "a b"}, "ab")
    with pytest.raises(InsufficientScope) as info:
        check_scopes({"scope": "a b"}, ["a", "orders:read"])
    assert info.value.scope == "a orders:read"
    with pytest.raises(InsufficientScope):
        check_scopes({}, ["a"])
    with pytest.raises(InsufficientScope):
        check_scopes({"scope": "ab"}, ["a"])  # whole scope tokens, not substrings
    with pytest.raises(InvalidToken):
        check_scopes({"scope": ["a"]}, ["a"])
    with pytest.raises(ValueError):
        validate_scope_names(['orders"read'])
    with pytest.raises(ValueError):
        validate_scope_names(["two words"])


@pytest.mark.parametrize(("header", "expected"), [
    (None, 300), ("max-age=3600", 3600), ("public, max-age=5", 60), ("max-age=999999999", 86400),
    ("no-store", 60), ("no-cache, max-age=600", 60), ("s-maxage=120", 120), ("private", 300),
])
def test_jwks_cache_lifetime_honours_max_age_within_bounds(header, expected):
    assert cache_lifetime(header, 300, 60, 86400) == expected


def _jwk(public, **extra):
    algo = RSAAlgorithm if isinstance(public, rsa.RSAPublicKey) else ECAlgorithm
    return {**algo.to_jwk(public, as_dict=True), **extra}


def test_jwks_parsing_keeps_only_usable_verification_keys():
    big = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    keys = parse_jwks({"keys": [
        _jwk(big, kid="rsa"),
        _jwk(small, kid="small-rsa"),                       # too short
        _jwk(p256, kid="ec", alg="ES256"),
        _jwk(p384, kid="p384"),
        _jwk(big, kid="enc", use="enc"),                    # not a signing key
        _jwk(big, kid="ops", key_ops=["encrypt"]),
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},     # a shared secret is no key
        _jwk(big),                                          # no kid
        _jwk(p256, kid="dup"), _jwk(big, kid="dup"),        # ambiguous kid
        _jwk(big, kid="weird-alg", alg="HS256"),
        {"kty": "EC", "kid": "bad-point", "crv": "P-256", "x": "AAAA", "y": "AAAA"},
        "not a jwk",
    ]})
    assert sorted(keys) == ["ec", "p384", "rsa"]
    assert keys["rsa"].kty == "RSA" and keys["ec"].crv == "P-256" and keys["p384"].crv == "P-384"
    assert isinstance(keys["rsa"].key, rsa.RSAPublicKey)
    with pytest.raises(ValueError):
        parse_jwks({"nokeys": []})


# --- import boundary -------------------------------------------------------------------------

PACKAGE_DIR = Path(verifier_pkg.__file__).parent
ALLOWED_THIRD_PARTY = {"cryptography", "flask"}


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, 0
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level


def _offenders(paths):
    found = []
    for path in paths:
        for name, level in _imports(path):
            top = name.split(".")[0]
            if level > 1 or (level == 0 and top == "authserver"
                             and not (name + ".").startswith("authserver.verifier.")):
                found.append(f"{path.name}: {'.' * level}{name}")
            elif level == 0 and top not in sys.stdlib_module_names | ALLOWED_THIRD_PARTY \
                    | {"__future__", "authserver"}:
                found.append(f"{path.name}: third-party {name}")
    return found


def test_verifier_imports_nothing_else_from_authserver():
    modules = sorted(PACKAGE_DIR.glob("*.py"))
    assert len(modules) >= 5, "the walk must see the package's modules"
    assert _offenders(modules) == []


def test_boundary_check_catches_an_offending_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from authserver.models import client\nfrom .. import db\nimport requests\n"
                   "import authserver.verifierx\nfrom authserver.verifier import keys\n")
    assert _offenders([bad]) == ["bad.py: authserver.models", "bad.py: ..",
                                 "bad.py: third-party requests", "bad.py: authserver.verifierx"]


def test_importing_the_verifier_loads_no_other_authserver_module():
    code = ("import sys, authserver.verifier; "
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('authserver', 'requests', 'sqlalchemy', 'authlib'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert "authserver.verifier" in out
    assert [m for m in out if m != "authserver" and not m.startswith("authserver.verifier")] == []
