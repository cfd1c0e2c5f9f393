"""Key-set administration: list with states, rotate now."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import clock
from ..config import Settings
from ..db import transaction
from ..keyring import rotation
from ..models.signing_key import SigningKey
from ..security.aead import Sealer

_STATE_ORDER = {"active": 0, "pending": 1, "retired": 2}


def _iso(value):
    return value.isoformat().replace("+00:00", "Z") if value else None


def list_keys(session: Session) -> list[dict]:
    rows = session.scalars(select(SigningKey)).all()
    rows.sort(key=lambda r: (_STATE_ORDER.get(r.state, 9), r.alg, r.created_at))
    return [
        {
            "kid": r.kid, "alg": r.alg, "kty": r.kty, "state": r.state,
            "created_at": _iso(r.created_at), "activated_at": _iso(r.activated_at),
            "retired_at": _iso(r.retired_at),
        }
        for r in rows
    ]


def rotate_now(session: Session, sealer: Sealer, settings: Settings, actor: str) -> dict:
    """Manual rotation: promotes the pending keys at once (the operator's call; the audit
    event notes an early promotion). Retries once if a scheduled rotation raced it."""
    for _attempt in range(3):
        try:
            with transaction(session):
                result = rotation.rotate(session, sealer, settings, clock.now(),
                                         scheduled=False, actor=actor)
            return {"promoted": result.promoted, "retired": result.retired,
                    "pending": result.created, "early_promotion": result.early}
        except rotation.RotationConflict:
            continue
    raise rotation.RotationConflict()


def public_jwks(session: Session) -> dict:
    """The public key set as the JWKS endpoint serves it (pending, active and retired keys;
    public members only), for verifiers that are configured offline and for backups."""
    import json

    rows = session.scalars(select(SigningKey).order_by(SigningKey.created_at)).all()
    return {"keys": [json.loads(r.public_jwk) for r in rows]}
