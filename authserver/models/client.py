"""OAuth clients: RFC 7591 metadata plus our extensions, and their secrets as digests.

A confidential client's secret is server-generated (256 bits) and stored only as a peppered
HMAC digest (security/tokens.py). During a secret rotation's grace period the previous digest
also verifies until ``previous_secret_expires_at``.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime


class Client(Base):
    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_name: Mapped[str] = mapped_column(String(200))
    grant_types: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    redirect_uris: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    post_logout_redirect_uris: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    scope: Mapped[str] = mapped_column(Text, default="")  # allowed scopes, space-separated
    default_scope: Mapped[str] = mapped_column(Text, default="")
    audiences: Mapped[str] = mapped_column(Text, default="[]")  # JSON list; first = default
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32))
    jwks: Mapped[str | None] = mapped_column(Text)  # JSON JWK set (private_key_jwt)
    jwks_uri: Mapped[str | None] = mapped_column(Text)
    ip_allowlist: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of CIDRs
    access_token_ttl: Mapped[int | None] = mapped_column(Integer)
    refresh_token_ttl: Mapped[int | None] = mapped_column(Integer)
    id_token_signed_response_alg: Mapped[str] = mapped_column(String(16), default="RS256")
    skip_consent: Mapped[bool] = mapped_column(Boolean, default=False)  # first-party clients
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    secret_digest: Mapped[str | None] = mapped_column(String(64))
    secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    previous_secret_digest: Mapped[str | None] = mapped_column(String(64))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Incident response: every token issued to this client before this instant is inactive.
    tokens_revoked_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)

    # -- JSON list columns ------------------------------------------------------------------

    def get_list(self, name: str) -> list[str]:
        return json.loads(getattr(self, name) or "[]")

    def set_list(self, name: str, values: list[str]) -> None:
        setattr(self, name, json.dumps(list(values)))

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    @property
    def active(self) -> bool:
        return self.enabled and self.deleted_at is None
