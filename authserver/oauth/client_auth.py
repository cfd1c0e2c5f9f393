"""Client authentication at the token, introspection and revocation endpoints.

Replaces Authlib's method-by-method trial (ClientAuthentication): the request's own method is
read off the request, and a client uses exactly the one method it is registered with (CONTRACT
§4). Two methods in one request are refused (RFC 6749 §2.3). Every failure is ``invalid_client``
with status 401, ``WWW-Authenticate: Basic`` when Basic was tried (RFC 6749 §5.2).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from urllib.parse import unquote_plus

from .. import audit, clock, endpoints
from ..extensions import Services
from ..models.client import Client
from . import client_assertion
from .errors import invalid_client
from .secrets_check import verify_client_secret

BASIC, POST, JWT, NONE = "client_secret_basic", "client_secret_post", "private_key_jwt", "none"


def _basic_credentials(header: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Base64.
    return unquote_plus(client_id), unquote_plus(secret)


def presented(headers, form) -> tuple[list[str], str | None, str | None]:
    """(methods used, client_id, credential)."""
    methods, client_id, credential = [], None, None
    auth = headers.get("Authorization", "")
    if auth[:6].lower() == "basic ":
        methods.append(BASIC)
        creds = _basic_credentials(auth)
        client_id, credential = creds if creds else (None, None)
    if "client_assertion" in form or "client_assertion_type" in form:
        methods.append(JWT)
        credential = form.get("client_assertion")
        client_id = form.get("client_id") or client_assertion.unverified_client_id(
            credential or "")
    if "client_secret" in form:
        methods.append(POST)
        client_id, credential = form.get("client_id"), form.get("client_secret")
    if not methods and form.get("client_id"):
        methods.append(NONE)
        client_id = form.get("client_id")
    if BASIC in methods and form.get("client_id") and form.get("client_id") != client_id:
        methods.append("conflicting client_id")
    return methods, client_id, credential


def authenticate(svc: Services, session, request, endpoint_url: str,
                 allow_public: bool = True) -> Client:
    """The authenticated client, or raises invalid_client (401)."""
    headers, form = request.headers, request.form
    methods, client_id, credential = presented(headers, form)
    basic_tried = BASIC in methods

    def fail(description: str, client: Client | None = None):
        audit.record(session, "client.auth_failed", actor="system", outcome="failure",
                     client_id=client.client_id if client else None,
                     details={"method": methods[0] if methods else None,
                              "reason": description})
        return invalid_client(description, basic_tried)

    if not methods:
        raise fail("client authentication required")
    if len(methods) > 1:
        raise fail("more than one client authentication method used")
    method = methods[0]
    if not client_id or not isinstance(client_id, str) or len(client_id) > 200:
        raise fail("malformed client credentials")
    def refused(client: Client | None) -> str | None:
        return refusal(svc, session, request, method, client, credential, endpoint_url,
                        allow_public)

    cached = svc.clients.holds(client_id)
    client = svc.clients.get(session, client_id)
    reason = refused(client)
    if reason is not None and cached:
        # The cached client may predate a change that admits this request (a new secret,
        # a re-enabled client, new keys): decide once more on the stored row.
        client = svc.clients.get(session, client_id, fresh=True)
        reason = refused(client)
    if reason is not None:
        raise fail(reason, client if reason != UNKNOWN else None)
    # Per-client rate limits (ratelimit.py) count only authenticated requests: presenting
    # another client's client_id spends nothing of its budget. May raise a 429 error.
    limit = svc.extra.get("on_client_authenticated")
    if limit is not None:
        limit(session, client)
    return client


UNKNOWN = "unknown or disabled client"


def refusal(svc: Services, session, request, method: str, client: Client | None,
             credential: str | None, endpoint_url: str, allow_public: bool) -> str | None:
    """Why this client may not authenticate with this request, or None."""
    if client is None or not client.active:
        return UNKNOWN
    if client.token_endpoint_auth_method != method:
        return "client is not registered for this authentication method"
    if method in (BASIC, POST):
        if not verify_client_secret(client, credential or "", svc.digester, clock.now()):
            return "client authentication failed"
    elif method == JWT:
        if request.form.get("client_assertion_type") != client_assertion.ASSERTION_TYPE:
            return "unsupported client_assertion_type"
        audiences = list(dict.fromkeys([svc.settings.issuer, endpoint_url,
                                        svc.settings.issuer + endpoints.TOKEN]))
        try:
            client_assertion.verify(session, client, credential or "", audiences,
                                    svc.extra["client_jwks"])
        except client_assertion.AssertionError_ as exc:
            return str(exc)
    elif not allow_public:
        return "this endpoint requires client authentication"
    if not _address_allowed(client, request.remote_addr):
        return "client not allowed from this address"
    return None


def _address_allowed(client: Client, remote_addr: str | None) -> bool:
    networks = client.get_list("ip_allowlist")
    if not networks:
        return True
    try:
        addr = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return False
    return any(addr in ipaddress.ip_network(n, strict=False) for n in networks)
