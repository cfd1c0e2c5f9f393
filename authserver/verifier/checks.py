"""Claim checks shared by the JWT verifier and the introspection verifier.

Each failure raises InvalidToken with a fixed description (RFC 6750 §3: error_description is
for developers and must not echo the token).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import InsufficientScope, InvalidToken, VerifierError


def _number(claims: Mapping[str, Any], name: str, required: bool) -> float | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    # RFC 7519 §2 NumericDate: a JSON number. bool is an int in Python, NaN/inf are not dates.
    if type(value) not in (int, float) or not math.isfinite(value):
        raise InvalidToken(f"missing or invalid {name} claim")
    return value


def check_times(claims: Mapping[str, Any], now: float, leeway: float,
                required: bool = True) -> None:
    """exp (RFC 7519 §4.1.4), nbf (§4.1.5), iat; RFC 9068 §2.2 makes exp and iat required."""
    exp = _number(claims, "exp", required)
    if exp is not None and now >= exp + leeway:
        raise InvalidToken("token expired")
    nbf = _number(claims, "nbf", False)
    if nbf is not None and nbf > now + leeway:
        raise InvalidToken("token not yet valid")
    iat = _number(claims, "iat", required)
    if iat is not None and iat > now + leeway:
        raise InvalidToken("token issued in the future")


def check_issuer(claims: Mapping[str, Any], issuer: str) -> None:
    # RFC 9068 §4: iss MUST exactly match the issuer identifier we trust.
    if claims.get("iss") != issuer:
        raise InvalidToken("wrong issuer")


def check_audience(claims: Mapping[str, Any], audience: str) -> None:
    # RFC 7519 §4.1.3 / RFC 9068 §4: aud is a string or an array that must contain our id.
    aud = claims.get("aud")
    if not (aud == audience or (type(aud) is list and audience in aud)):
        raise InvalidToken("wrong audience")


def granted_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    # RFC 9068 §2.2.3 / RFC 8693 §4.2: `scope` is one space-separated string.
    scope = claims.get("scope")
    if scope is None:
        return frozenset()
    if not isinstance(scope, str):
        raise InvalidToken("malformed scope claim")
    return frozenset(scope.split(" "))


def check_scopes(claims: Mapping[str, Any], required: Iterable[str] | str) -> None:
    # A plain string is read as a scope list ("a b"), not iterated character by character.
    required = tuple(required.split()) if isinstance(required, str) else tuple(required)
    if required and not granted_scopes(claims).issuperset(required):
        # RFC 6750 §3.1: 403 insufficient_scope naming the scope(s) the resource needs.
        raise InsufficientScope(" ".join(required))


def validate_scope_names(scopes: Iterable[str]) -> tuple[str, ...]:
    """Required scopes as a tuple, each a valid scope-token (RFC 6749 §3.3 NQCHAR, so it can be
    quoted in a challenge as-is)."""
    result = tuple(scopes)
    for scope in result:
        if not isinstance(scope, str) or not scope or any(
            c in '"\\ ' or not 0x21 <= ord(c) <= 0x7E for c in scope
        ):
            raise ValueError(f"invalid scope name {scope!r}")
    return result


class TokenChecks:
    """The public ``verify`` shared by Verifier and IntrospectionVerifier: the subclass's
    ``_verify`` proves the token; required scopes are checked here, and every refusal
    carries the verifier's realm for its WWW-Authenticate challenge (RFC 6750 §3)."""

    realm: str

    def verify(self, token: str, scopes: Iterable[str] = ()) -> dict[str, Any]:
        """The verified claims, or InvalidToken / InsufficientScope (with this realm)."""
        try:
            claims = self._verify(token)
            if scopes:
                check_scopes(claims, scopes)
        except VerifierError as exc:
            exc.realm = self.realm
            raise
        return claims

    def _verify(self, token: str) -> dict[str, Any]:
        raise NotImplementedError
