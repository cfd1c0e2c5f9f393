"""Authorization codes: issued at the authorization endpoint, exchanged once at the token
endpoint (RFC 6749 §4.1, RFC 7636, OIDC Core §3.1.3).

A code is 256 bits from ``secrets``, stored only as a peppered digest, lives
``AUTHSERVER_CODE_TTL`` seconds, and is consumed by one conditional UPDATE, never deleted
(Authlib deletes, so a replay would look like an unknown code: ARCHITECTURE gap 3). A second
exchange is refused with ``invalid_grant`` and revokes what the first one issued (RFC 6749
§4.1.2: SHOULD; RFC 9700 §4.5): the access token's ``jti`` and the refresh family.
"""

from __future__ import annotations

from datetime import timedelta

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError,
    InvalidRequestError,
    UnauthorizedClientError,
)
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .. import audit, clock
from ..extensions import Services
from ..models import AuthorizationCode, RefreshFamily, RevokedToken, User
from ..oidc import sessions
from ..oidc.sessions import SignedIn
from ..security import tokens
from . import families, pkce, refresh
from .authorization_request import AuthorizationRequest
from .token_response import user_tokens

PURPOSE = "authorization_code"


def issue_code(db: Session, svc: Services, req: AuthorizationRequest, signed: SignedIn) -> str:
    value = tokens.generate()
    now = clock.now()
    db.add(AuthorizationCode(
        code_digest=svc.digester.digest(value, PURPOSE), client_id=req.client.client_id,
        user_id=signed.user.id, session_sid=signed.sid, redirect_uri=req.redirect_uri,
        scope=req.scope, audience=req.audience_json(), nonce=req.nonce,
        code_challenge=req.code_challenge, code_challenge_method=req.code_challenge_method,
        auth_time=signed.auth_time, created_at=now,
        expires_at=now + timedelta(seconds=svc.settings.code_ttl),
    ))
    audit.record(db, "authorization_code.issued", actor=f"user:{signed.user.id}",
                 client_id=req.client.client_id, details={"scope": req.scope, "sid": signed.sid})
    return value


def _load(db: Session, digest: str) -> tuple[AuthorizationCode | None, User | None]:
    """The code and its user, in one round trip (the fewest per request: README,
    Performance); (None, None) for an unknown digest."""
    found = db.execute(
        select(AuthorizationCode, User)
        .outerjoin(User, User.id == AuthorizationCode.user_id)
        .where(AuthorizationCode.code_digest == digest)
    ).first()
    return tuple(found) if found is not None else (None, None)


def _consume(db: Session, code: AuthorizationCode) -> bool:
    result = db.execute(
        update(AuthorizationCode)
        .where(AuthorizationCode.code_digest == code.code_digest,
               AuthorizationCode.consumed_at.is_(None))
        .values(consumed_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _revoke_what_was_issued(db: Session, code: AuthorizationCode) -> None:
    db.refresh(code)  # the first exchange's issued_* columns, committed meanwhile
    if code.issued_jti and db.get(RevokedToken, code.issued_jti) is None:
        db.add(RevokedToken(jti=code.issued_jti, client_id=code.client_id,
                            revoked_at=clock.now(),
                            expires_at=code.issued_jti_expires_at or clock.now()))
    if code.issued_family_id:
        families.revoke(db, RefreshFamily.id == code.issued_family_id, reason="code_replayed")
    audit.record(db, "authorization_code.replayed", actor=f"client:{code.client_id}",
                 client_id=code.client_id, outcome="failure",
                 details={"jti": code.issued_jti, "grant_id": code.issued_family_id,
                          "user": code.user_id})


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    """The token-endpoint half. The authorization endpoint is authorization_request.py plus
    web/authorize.py: Authlib's front half relies on ClientMixin methods and would redirect
    errors we must show on a page."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post",
                                   "private_key_jwt", "none"]

    def validate_authorization_request(self):
        raise NotImplementedError("the authorization endpoint is web/authorize.py")

    def validate_token_request(self):
        svc, db = self.server.services, self.server.db_session()
        client = self.authenticate_token_endpoint_client()
        if "authorization_code" not in client.get_list("grant_types"):
            raise UnauthorizedClientError("the client may not use the authorization code grant")
        value = self.request.form.get("code")
        if not value:
            raise InvalidRequestError("missing code")
        code, user = _load(db, svc.digester.digest(value, PURPOSE)) \
            if len(value) <= 512 else (None, None)
        # RFC 6749 §4.1.3: issued to this client; a code of another client is just unknown.
        if code is None or code.client_id != client.client_id:
            raise InvalidGrantError("unknown authorization code")
        if code.consumed_at is not None:
            _revoke_what_was_issued(db, code)
            raise InvalidGrantError("authorization code already used")
        if code.expires_at <= clock.now():
            raise InvalidGrantError("authorization code expired")
        # RFC 6749 §4.1.3: redirect_uri identical to the authorization request's.
        if self.request.form.get("redirect_uri") != code.redirect_uri:
            raise InvalidGrantError("redirect_uri does not match the authorization request")
        pkce.check_verifier(self.request.form.get("code_verifier"), code.code_challenge,
                            code.code_challenge_method)
        # Checked before, consumed now: a failed attempt (wrong verifier) leaves the code to
        # its owner; of two concurrent exchanges exactly one passes this UPDATE.
        if not _consume(db, code):
            _revoke_what_was_issued(db, code)
            raise InvalidGrantError("authorization code already used")
        if not sessions.user_is_usable(user):
            raise InvalidGrantError("the user can no longer sign in")
        self.request.client, self.request.user = client, user
        self.request.authorization_code = code

    def create_token_response(self):
        # Ours, not Authlib's: it logs the token at DEBUG and deletes the code (gaps 1, 3).
        svc, db = self.server.services, self.server.db_session()
        client, user = self.request.client, self.request.user
        code: AuthorizationCode = self.request.authorization_code
        family = None
        if "refresh_token" in client.get_list("grant_types"):
            family = refresh.start_family(db, client, user, scope=code.scope,
                                          audience=code.audience, auth_time=code.auth_time,
                                          sid=code.session_sid)
        body, issued = user_tokens(
            svc, client, user, scope=code.scope, audience=code.audience,
            auth_time=code.auth_time, sid=code.session_sid, nonce=code.nonce,
            grant_id=family.id if family else None)
        if family is not None:
            body["refresh_token"] = refresh.issue(db, svc, client, family, code.scope)
        code.issued_jti = issued.claims["jti"]
        code.issued_jti_expires_at = clock.now() + timedelta(seconds=issued.expires_in)
        code.issued_family_id = family.id if family else None
        audit.record(db, "token.issued", actor=f"user:{user.id}", client_id=client.client_id,
                     details={"grant_type": "authorization_code", "jti": issued.claims["jti"],
                              "grant_id": code.issued_family_id, "scope": code.scope})
        return 200, body, self.TOKEN_RESPONSE_HEADER
