"""Verifier errors and their RFC 6750 §3 `WWW-Authenticate` challenges.

Descriptions are fixed strings chosen by the verifier: nothing from the token is ever echoed,
so an error body cannot reflect attacker input (and stays within RFC 6750 §3's quoted-string
charset).
"""

from __future__ import annotations


class VerifierError(Exception):
    """Base class: a bearer token was not accepted."""

    status_code = 401
    error: str | None = "invalid_token"

    def __init__(self, description: str, *, realm: str = "api") -> None:
        super().__init__(description)
        self.description = description
        self.realm = realm

    def challenge_params(self) -> list[tuple[str, str]]:
        params = [("realm", self.realm)]
        if self.error:
            params += [("error", self.error), ("error_description", self.description)]
        return params

    @property
    def www_authenticate(self) -> str:
        """The `WWW-Authenticate` header value (RFC 6750 §3)."""
        return "Bearer " + ", ".join(f'{k}="{v}"' for k, v in self.challenge_params())

    def to_dict(self) -> dict[str, str]:
        """The JSON error body; RFC 6750 §3 names the members after the challenge params."""
        error = self.error or "missing_authorization"
        return {"error": error, "error_description": self.description}


class InvalidToken(VerifierError):
    """The token is missing, malformed, expired or otherwise unacceptable: 401 (RFC 6750 §3.1)."""


class MissingToken(InvalidToken):
    """No bearer credentials at all. RFC 6750 §3.1: the challenge then SHOULD NOT carry an
    error code, so the header is a bare `Bearer realm="…"`. The JSON body uses Authlib's
    `missing_authorization` code so clients still get a machine-readable reason."""

    error = None


class IntrospectionUnavailable(InvalidToken):
    """The introspection endpoint could not be asked. Fails closed like any invalid token, but
    answers 503 so clients retry instead of discarding a token that may be fine."""

    status_code = 503
    error = "temporarily_unavailable"


class InsufficientScope(VerifierError):
    """A valid token lacks a required scope: 403 (RFC 6750 §3.1) with the `scope` attribute."""

    status_code = 403
    error = "insufficient_scope"

    def __init__(self, scope: str, *, realm: str = "api") -> None:
        super().__init__("token lacks the required scope", realm=realm)
        self.scope = scope

    def challenge_params(self) -> list[tuple[str, str]]:
        # RFC 6750 §3: "scope" lists the scopes needed to access the resource.
        return [*super().challenge_params(), ("scope", self.scope)]

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "scope": self.scope}


class ConfigurationError(ValueError):
    """The verifier was constructed with an unsafe or impossible setting."""
