"""The token response for a person's grant (code exchange and refresh): an RFC 9068 access
token, and an ID token when the scope holds ``openid`` (OIDC Core §3.1.3.3)."""

from __future__ import annotations

import json
from datetime import datetime

from ..extensions import Services
from ..models import Client, User
from ..oidc import id_token
from . import access_tokens, scopes


def user_tokens(svc: Services, client: Client, user: User, *, scope: str,
                audience: str | None, auth_time: datetime, sid: str | None,
                grant_id: str | None, nonce: str | None = None
                ) -> tuple[dict, access_tokens.Issued]:
    """(response body without refresh_token, the issued access token)."""
    aud = json.loads(audience) if audience else svc.settings.issuer
    issued = access_tokens.issue(svc, client, subject=user.id, scope=scope, audience=aud,
                                 auth_time=int(auth_time.timestamp()), grant_id=grant_id)
    body = {"access_token": issued.token, "token_type": "Bearer",
            "expires_in": issued.expires_in, "scope": scope}
    if "openid" in scopes.split(scope):
        body["id_token"] = id_token.issue(svc, client, user, auth_time=auth_time, nonce=nonce,
                                          sid=sid, access_token=issued.token)
    return body, issued
