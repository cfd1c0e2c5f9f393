"""The authorization request (RFC 6749 §4.1.1, OIDC Core §3.1.2.1) as a table of small checks.

Order matters: until the client and its redirect URI are verified, an error is shown to the
person on a page and never redirected (RFC 6749 §4.1.2.1, RFC 9700 §4.11 open redirectors);
after that, errors go back to the client's redirect URI with ``state`` and ``iss``.
The redirect URI must equal a registered one string for string, port included (no RFC 8252
loopback-port exception: CONTRACT §4), and is required even when only one is registered
(OIDC Core §3.1.2.1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.rfc6749.errors import UnauthorizedClientError
from sqlalchemy.orm import Session

from ..models import Client
from . import pkce, scopes
from .errors import clean_description

PROMPTS = frozenset({"none", "login", "consent", "select_account"})
SINGLE = ("client_id", "redirect_uri", "response_type", "response_mode", "scope", "state",
          "nonce", "code_challenge", "code_challenge_method", "prompt", "max_age",
          "login_hint")
MAX_VALUE = 2048  # state, nonce, hints: generous, but bounded (they are stored and echoed)


class UntrustedRedirect(Exception):
    """An error before a trusted redirect URI is known: shown on a page."""

    def __init__(self, description: str):
        super().__init__(description)
        self.description = description


class AuthorizationError(OAuth2Error):
    """An error sent back to the client's (verified) redirect URI."""

    def __init__(self, error: str, description: str, redirect_uri: str, state: str | None):
        super().__init__(clean_description(description), redirect_uri=redirect_uri,
                         state=state, error=error)


@dataclass(frozen=True)
class AuthorizationRequest:
    client: Client
    redirect_uri: str
    state: str | None
    scope: str
    audience: str | list[str]
    code_challenge: str
    code_challenge_method: str
    nonce: str | None = None
    prompt: frozenset[str] = frozenset()
    max_age: int | None = None
    login_hint: str | None = None
    resources: tuple[str, ...] = field(default=())

    @property
    def scopes(self) -> list[str]:
        return scopes.split(self.scope)

    def form_fields(self) -> list[tuple[str, str]]:
        """The request as hidden form fields (the consent form posts it back; every value is
        checked again there, so a tampered field gains the person nothing)."""
        fields = [("client_id", self.client.client_id), ("redirect_uri", self.redirect_uri),
                  ("response_type", "code"), ("scope", self.scope),
                  ("code_challenge", self.code_challenge),
                  ("code_challenge_method", self.code_challenge_method)]
        for name in ("state", "nonce"):
            if getattr(self, name) is not None:
                fields.append((name, getattr(self, name)))
        fields += [("resource", r) for r in self.resources]
        return fields

    def audience_json(self) -> str:
        return json.dumps(self.audience)


def parse(db: Session, params, issuer: str) -> AuthorizationRequest:
    """Validate ``params`` (a MultiDict). Raises UntrustedRedirect or AuthorizationError."""
    for name in ("client_id", "redirect_uri"):
        if len(params.getlist(name)) > 1:
            raise UntrustedRedirect(f"The {name} parameter was given more than once.")
    client_id = params.get("client_id")
    client = db.get(Client, client_id) if client_id and len(client_id) <= 64 else None
    if client is None or not client.active:
        raise UntrustedRedirect("The application that sent you here is not known.")
    redirect_uri = params.get("redirect_uri")
    if not redirect_uri:
        raise UntrustedRedirect("The application did not say where to return to.")
    if redirect_uri not in client.get_list("redirect_uris"):
        raise UntrustedRedirect("The application's return address is not registered.")

    state = params.get("state")

    def fail(error: str, description: str):
        return AuthorizationError(error, description, redirect_uri, state)

    try:
        return _checked(client, redirect_uri, state, params, issuer, fail)
    except OAuth2Error as exc:
        if isinstance(exc, AuthorizationError):
            raise
        raise fail(exc.error, exc.description or exc.error) from None


def _checked(client, redirect_uri, state, params, issuer, fail) -> AuthorizationRequest:
    for name in SINGLE:
        if len(params.getlist(name)) > 1:
            raise fail("invalid_request", f"{name} given more than once")
    if "authorization_code" not in client.get_list("grant_types"):
        raise UnauthorizedClientError("the client may not use the authorization code grant")
    # OIDC Core §6: request objects are not supported (discovery says so).
    if "request" in params:
        raise fail("request_not_supported", "request objects are not supported")
    if "request_uri" in params:
        raise fail("request_uri_not_supported", "request_uri is not supported")
    if params.get("response_type") != "code":
        raise fail("unsupported_response_type", "only response_type=code is supported")
    if params.get("response_mode", "query") != "query":
        raise fail("invalid_request", "only response_mode=query is supported")
    for name in ("state", "nonce", "login_hint"):
        if len(params.get(name) or "") > MAX_VALUE:
            raise fail("invalid_request", f"{name} is too long")
    scope = scopes.resolve_scope(client, params.get("scope"))
    pkce.check_challenge(params.get("code_challenge"), params.get("code_challenge_method"))
    resources = tuple(params.getlist("resource"))
    audience = scopes.resolve_audience(client, list(resources), issuer)
    prompt = frozenset((params.get("prompt") or "").split())
    if not prompt <= PROMPTS:
        raise fail("invalid_request", "unsupported prompt value")
    if "none" in prompt and len(prompt) > 1:
        raise fail("invalid_request", "prompt=none cannot be combined")  # OIDC Core §3.1.2.1
    max_age = params.get("max_age")
    if max_age is not None:
        if not max_age.isdigit() or len(max_age) > 10:
            raise fail("invalid_request", "max_age must be a whole number of seconds")
        max_age = int(max_age)
    return AuthorizationRequest(
        client=client, redirect_uri=redirect_uri, state=state, scope=scope, audience=audience,
        code_challenge=params["code_challenge"], code_challenge_method=pkce.METHOD,
        nonce=params.get("nonce"), prompt=prompt, max_age=max_age,
        login_hint=params.get("login_hint"), resources=resources,
    )
