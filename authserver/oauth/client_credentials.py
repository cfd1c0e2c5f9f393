"""Client credentials grant (RFC 6749 §4.4) issuing RFC 9068 JWT access tokens."""

from __future__ import annotations

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import UnauthorizedClientError
from sqlalchemy.orm import Session

from ..extensions import Services
from ..models.client import Client
from . import access_tokens, scopes


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    # Which methods a client may use is decided per client in client_auth.py.
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post",
                                   "private_key_jwt"]

    def validate_token_request(self):
        client = self.authenticate_token_endpoint_client()
        if not allowed(client):
            raise UnauthorizedClientError("the client may not use client_credentials")
        self.request.client = client
        svc = self.server.services
        self.request.scope = scopes.resolve_scope(client, self.request.payload.scope)
        self.audience = scopes.resolve_audience(
            client, self.request.payload.datalist.get("resource", []), svc.settings.issuer)

    def create_token_response(self):
        # Overrides Authlib's, which logs the token at DEBUG (ARCHITECTURE, Authlib gap 1).
        body = issue(self.server.services, self.server.db_session(), self.request.client,
                     self.request.scope, self.audience)
        return 200, body, self.TOKEN_RESPONSE_HEADER


def allowed(client: Client) -> bool:
    """RFC 6749 §4.4: confidential clients registered for the grant only."""
    return not client.is_public and "client_credentials" in client.get_list("grant_types")


def issue(svc: Services, session: Session | None, client: Client, scope: str, audience) -> dict:
    """The token response of a validated request, its audit event durable (the grant above
    and fast_path.py). Raises AuditUnavailable when the event cannot be committed."""
    issued = access_tokens.issue(svc, client, subject=client.client_id, scope=scope,
                                 audience=audience)
    # Nothing else is written for this grant: group-committed, durable before we answer.
    svc.audit_writer.record(
        session, "token.issued", actor=f"client:{client.client_id}",
        client_id=client.client_id,
        details={"grant_type": "client_credentials", "jti": issued.claims["jti"],
                 "scope": scope, "aud": audience})
    return {"access_token": issued.token, "token_type": "Bearer",
            "expires_in": issued.expires_in, "scope": scope}
