"""Scope and audience selection for a token request.

Scope (RFC 6749 §3.3): a request outside the client's allowed scopes is ``invalid_scope``; no
scope requested gets the client's ``default_scope``, or ``invalid_scope`` when it has none.
Audience (RFC 8707 §2): each ``resource`` must be one of the client's allowed audiences
(``invalid_target`` otherwise); without one, the client's first (default) audience; a client
registered with no audience gets the issuer as ``aud``.
"""

from __future__ import annotations

from authlib.oauth2.rfc6749.errors import InvalidScopeError

from ..models.client import Client
from .errors import InvalidTargetError


def split(scope: str | None) -> list[str]:
    return [s for s in (scope or "").split(" ") if s]


def join(scopes) -> str:
    """Canonical form: unique, in a stable order."""
    return " ".join(sorted(set(scopes)))


def resolve_scope(client: Client, requested: str | None) -> str:
    allowed = set(split(client.scope))
    wanted = split(requested)
    if requested is not None and not wanted:
        raise InvalidScopeError("scope is empty")
    if not wanted:
        default = split(client.default_scope)
        if not default:
            raise InvalidScopeError("no scope requested and the client has no default scope")
        return join(default)
    if not set(wanted) <= allowed:
        raise InvalidScopeError("requested scope is not allowed for this client")
    return join(wanted)


def narrow_scope(granted: str, requested: str | None) -> str:
    """Refresh (RFC 6749 §6): the original scope or a subset of it."""
    if requested is None:
        return granted
    wanted = split(requested)
    if not wanted or not set(wanted) <= set(split(granted)):
        raise InvalidScopeError("requested scope exceeds the original grant")
    return join(wanted)


def resolve_audience(client: Client, resources: list[str], issuer: str) -> str | list[str]:
    allowed = client.get_list("audiences")
    if not resources:
        return allowed[0] if allowed else issuer
    for resource in resources:
        if resource not in allowed:
            raise InvalidTargetError("resource is not an allowed audience for this client")
    unique = list(dict.fromkeys(resources))
    return unique[0] if len(unique) == 1 else unique
