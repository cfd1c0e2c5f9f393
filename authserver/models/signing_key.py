"""Signing keys and the key set's version row.

A key moves pending → active → retired → (deleted once nothing it signed can still be valid).
Private keys are stored sealed (security/aead.py) with the kid as associated data.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime

PENDING, ACTIVE, RETIRED = "pending", "active", "retired"


class SigningKey(Base):
    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    kty: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16), index=True)
    public_jwk: Mapped[str] = mapped_column(Text)  # JSON, public members only
    private_key_sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When a retired key may be dropped: retired_at + the longest token lifetime.
    purge_after: Mapped[datetime | None] = mapped_column(UTCDateTime())


class KeyringState(Base):
    """One row (id=1). ``version`` changes with every change of the key set: processes poll it
    cheaply to reload, and rotation is a compare-and-swap on it, so exactly one of several
    concurrent rotators wins."""

    __tablename__ = "keyring_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
