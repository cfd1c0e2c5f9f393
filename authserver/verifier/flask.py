"""Flask integration: the `require_scope` decorator and `current_claims()`.

RFC 6750 choices, made once here:
- only the Authorization header is read (§2.1); form and query tokens (§2.2, §2.3) are not
  supported, so a token there counts as no token;
- no header, or another scheme (e.g. Basic): 401 with a bare `Bearer realm="…"` challenge,
  since §3.1 says a request without authentication information SHOULD NOT get an error code;
- `Bearer` with an empty or malformed token: 401 `invalid_token` (§3.1: "malformed");
- a valid token lacking a scope: 403 `insufficient_scope` with the `scope` attribute.
Error answers carry a JSON body `{"error", "error_description"}` and `Cache-Control: no-store`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from flask import Response, g, jsonify, request

from .checks import validate_scope_names
from .errors import InvalidToken, MissingToken, VerifierError

F = TypeVar("F", bound=Callable[..., Any])

# RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token; the scheme is case-insensitive
# (RFC 9110 §11.1). One or more spaces are tolerated, trailing whitespace is not a token char.
_BEARER = re.compile(r"Bearer +([A-Za-z0-9\-._~+/]+=*)", re.IGNORECASE)
_SCHEME = re.compile(r"Bearer(?: |$)", re.IGNORECASE)


class TokenVerifier(Protocol):
    realm: str

    def verify(self, token: str, scopes: Iterable[str] = ...) -> dict[str, Any]: ...


def bearer_token(header: str | None, realm: str = "api") -> str:
    """The token of an `Authorization: Bearer …` header, or MissingToken / InvalidToken."""
    if not header or not _SCHEME.match(header):
        raise MissingToken("bearer token required", realm=realm)
    match = _BEARER.fullmatch(header.strip())
    if match is None:
        raise InvalidToken("malformed bearer token", realm=realm)
    return match.group(1)


def error_response(exc: VerifierError) -> Response:
    response = jsonify(exc.to_dict())
    response.status_code = exc.status_code
    response.headers["WWW-Authenticate"] = exc.www_authenticate
    response.headers["Cache-Control"] = "no-store"  # RFC 6749 §5.2 spirit: errors not cached
    if exc.status_code == 503:
        response.headers["Retry-After"] = "5"
    return response


def require_scope(verifier: TokenVerifier, *scopes: str) -> Callable[[F], F]:
    """Decorate a view so it runs only for a valid bearer token holding every scope given.

    With no scopes any valid token passes. The verified claims are on `flask.g.token_claims`.
    """
    required = validate_scope_names(scopes)

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                token = bearer_token(request.headers.get("Authorization"), verifier.realm)
                g.token_claims = verifier.verify(token, required)
            except VerifierError as exc:
                return error_response(exc)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


def current_claims() -> dict[str, Any]:
    """The verified claims of the current request (inside a `require_scope` view)."""
    claims = g.get("token_claims")
    if claims is None:
        raise RuntimeError("no verified token: the view is not decorated with require_scope")
    return claims
