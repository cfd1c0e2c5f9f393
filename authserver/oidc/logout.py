"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at ``end_session_endpoint``.

- ``id_token_hint`` must be an ID token this issuer signed; it may have expired (§2: the OP
  SHOULD accept it "even when the exp time has passed"). It names the client (``aud``).
- ``post_logout_redirect_uri`` is followed only when it equals, string for string, one the
  client registered, and the client is known from the hint or ``client_id`` (§3: otherwise the
  OP MUST NOT redirect). Anything else is an error page, so the endpoint is no open redirector.
- Without a hint naming the signed-in person, the person confirms on a CSRF-protected page
  (§6: a cross-site request must not silently sign people out).
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt
from sqlalchemy.orm import Session

from ..extensions import Services
from ..models import Client
from .sessions import SignedIn

MAX_HINT = 8192


class InvalidLogoutRequest(Exception):
    def __init__(self, description: str):
        super().__init__(description)
        self.description = description


@dataclass(frozen=True)
class LogoutRequest:
    client: Client | None
    hint: dict | None  # verified ID token claims
    id_token_hint: str | None
    post_logout_redirect_uri: str | None
    state: str | None

    def form_fields(self) -> list[tuple[str, str]]:
        fields = []
        if self.id_token_hint:
            fields.append(("id_token_hint", self.id_token_hint))
        if self.client is not None:
            fields.append(("client_id", self.client.client_id))
        if self.post_logout_redirect_uri:
            fields.append(("post_logout_redirect_uri", self.post_logout_redirect_uri))
        if self.state is not None:
            fields.append(("state", self.state))
        return fields


def verify_hint(svc: Services, token: str) -> dict | None:
    """The claims of an ID token this issuer signed (expired or not), else None."""
    if not isinstance(token, str) or len(token) > MAX_HINT or token.count(".") != 2:
        return None
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return None
    if header.get("typ", "JWT") != "JWT":  # an access token (at+jwt) is not an ID token
        return None
    key = svc.keyset.verification_key(header.get("kid") or "")
    if key is None or header.get("alg") != key.alg:
        return None
    try:
        return jwt.decode(token, key.public_key, algorithms=[key.alg],
                          issuer=svc.settings.issuer,
                          options={"verify_aud": False, "verify_exp": False,
                                   "verify_iat": False, "require": ["sub", "aud"]})
    except jwt.PyJWTError:
        return None


def parse(svc: Services, db: Session, params) -> LogoutRequest:
    hint_token = params.get("id_token_hint") or None
    hint = None
    if hint_token is not None:
        hint = verify_hint(svc, hint_token)
        if hint is None:
            raise InvalidLogoutRequest("The sign-out link carries an ID token that is not "
                                       "valid here.")
    client_id = params.get("client_id") or None
    if hint is not None:
        audiences = hint["aud"] if isinstance(hint["aud"], list) else [hint["aud"]]
        if client_id is not None and client_id not in audiences:
            raise InvalidLogoutRequest("The sign-out link names two different applications.")
        client_id = client_id or audiences[0]
    client = db.get(Client, client_id) if client_id and len(client_id) <= 64 else None
    if client_id is not None and (client is None or not client.active):
        raise InvalidLogoutRequest("The application that sent you here is not known.")
    uri = params.get("post_logout_redirect_uri") or None
    if uri is not None and (client is None
                            or uri not in client.get_list("post_logout_redirect_uris")):
        raise InvalidLogoutRequest("The application's return address is not registered.")
    return LogoutRequest(client=client, hint=hint, id_token_hint=hint_token,
                         post_logout_redirect_uri=uri, state=params.get("state"))


def needs_confirmation(req: LogoutRequest, signed: SignedIn | None) -> bool:
    if signed is None:
        return False  # nothing to end
    if req.hint is None or req.hint.get("sub") != signed.user.id:
        return True
    sid = req.hint.get("sid")
    return sid is not None and sid != signed.sid
