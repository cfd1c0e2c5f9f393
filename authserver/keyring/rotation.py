"""The key lifecycle as explicit transitions, each one function in one transaction.

pending  published in the JWKS, not yet signing (verifiers learn it before it is used);
active   the one key per algorithm that signs;
retired  no longer signs, still published until every token it signed has expired;
then the row is deleted (purged).

Exactly one rotation happens when several processes try at once: each transition first does
a compare-and-swap on ``keyring_state.version``; the loser's UPDATE matches no row and it backs
off. The version change is also what tells every process to reload its key set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from .. import audit
from ..config import Settings
from ..models.signing_key import ACTIVE, PENDING, RETIRED, KeyringState, SigningKey
from ..security.aead import Sealer
from .store import ALGORITHMS, new_key


class RotationConflict(Exception):
    """Another process changed the key set first; nothing was done here."""


@dataclass
class RotationResult:
    promoted: dict[str, str] = field(default_factory=dict)  # alg -> kid now active
    retired: dict[str, str] = field(default_factory=dict)  # alg -> kid retired
    created: dict[str, str] = field(default_factory=dict)  # alg -> new pending kid
    early: bool = False  # a pending key promoted before a full JWKS cache lifetime


def read_version(session: Session) -> int | None:
    return session.execute(select(KeyringState.version).where(KeyringState.id == 1)).scalar()


def _claim(session: Session, expected: int | None, now: datetime) -> None:
    """Compare-and-swap the version; raises RotationConflict if someone else moved it."""
    if expected is None:
        session.add(KeyringState(id=1, version=1, rotated_at=now))
        session.flush()  # a concurrent insert fails on the primary key
        return
    result = session.execute(
        update(KeyringState)
        .where(KeyringState.id == 1, KeyringState.version == expected)
        .values(version=expected + 1, rotated_at=now)
    )
    if result.rowcount != 1:
        raise RotationConflict()


def _keys(session: Session, state: str) -> dict[str, SigningKey]:
    rows = session.scalars(
        select(SigningKey).where(SigningKey.state == state).order_by(SigningKey.created_at)
    )
    found: dict[str, SigningKey] = {}
    for row in rows:
        found.setdefault(row.alg, row)
    return found


def ensure_keys(session: Session, sealer: Sealer, now: datetime) -> bool:
    """Give every algorithm an active and a pending key (first start). True if it changed
    anything. The very first active key signs at once: no verifier can hold a stale JWKS of
    an issuer that has never published one."""
    version = read_version(session)
    active, pending = _keys(session, ACTIVE), _keys(session, PENDING)
    missing = [(alg, ACTIVE) for alg in ALGORITHMS if alg not in active]
    missing += [(alg, PENDING) for alg in ALGORITHMS if alg not in pending]
    if not missing and version is not None:
        return False
    _claim(session, version, now)
    for alg, state in missing:
        row = new_key(alg, sealer, now, state=state)
        if state == ACTIVE:
            row.activated_at = now
        session.add(row)
        audit.record(session, "key.created", actor="system",
                     details={"kid": row.kid, "alg": alg, "state": state})
    return True


def rotation_due(active_activated_at: datetime | None, settings: Settings, now: datetime) -> bool:
    if settings.key_rotation_days <= 0 or active_activated_at is None:
        return False
    return now >= active_activated_at + timedelta(days=settings.key_rotation_days)


def rotate(
    session: Session,
    sealer: Sealer,
    settings: Settings,
    now: datetime,
    *,
    scheduled: bool,
    expected_version: int | None = None,
    actor: str = "system",
) -> RotationResult | None:
    """Promote each pending key, retire each active one, publish new pending keys.

    A scheduled rotation waits until the pending key has been published for a full JWKS
    cache lifetime (returns None before then); a manual one promotes at once and says so in
    the audit event. Raises RotationConflict when another process rotated first.
    """
    version = read_version(session) if expected_version is None else expected_version
    pending, active = _keys(session, PENDING), _keys(session, ACTIVE)
    publication_floor = now - timedelta(seconds=settings.jwks_max_age)
    early = any(pending.get(alg) is None or pending[alg].created_at > publication_floor
                for alg in ALGORITHMS)
    if scheduled and early:
        return None
    _claim(session, version, now)
    result = RotationResult(early=early)
    purge_after = now + timedelta(
        seconds=settings.max_token_lifetime + settings.key_refresh_seconds + 60
    )
    for alg in ALGORITHMS:
        old = active.get(alg)
        if old is not None:
            old.state, old.retired_at, old.purge_after = RETIRED, now, purge_after
            result.retired[alg] = old.kid
        promoted = pending.get(alg) or _add(session, new_key(alg, sealer, now))
        promoted.state, promoted.activated_at = ACTIVE, now
        result.promoted[alg] = promoted.kid
        result.created[alg] = _add(session, new_key(alg, sealer, now)).kid
    audit.record(
        session,
        "key.rotated",
        actor=actor,
        details={
            "trigger": "scheduled" if scheduled else "manual",
            "early_promotion": early,
            "promoted": result.promoted,
            "retired": result.retired,
            "pending": result.created,
        },
    )
    return result


def _add(session: Session, row: SigningKey) -> SigningKey:
    session.add(row)
    return row


def purge_expired(session: Session, now: datetime) -> list[str]:
    """Delete retired keys whose every token has expired. Returns their kids."""
    version = read_version(session)
    kids = list(session.scalars(
        select(SigningKey.kid).where(SigningKey.state == RETIRED, SigningKey.purge_after <= now)
    ))
    if not kids:
        return []
    _claim(session, version, now)
    session.execute(delete(SigningKey).where(SigningKey.kid.in_(kids)))
    audit.record(session, "key.purged", actor="system", details={"kids": kids})
    return kids


class UnknownKey(LookupError):
    """No signing key has this kid (never existed, purged, or already revoked)."""


def revoke(session: Session, sealer: Sealer, kid: str, now: datetime, *, actor: str) -> dict:
    """Key compromise: the key leaves the key set at once — unpublished, and everything it
    signed stops verifying (introspection: inactive). If it was the active key of its
    algorithm, the pending key (already published) is promoted at once; a new pending key is
    made in either case, so the set keeps one active and one pending key per algorithm.
    The row is deleted, like a purge; the ``key.revoked`` audit event keeps the record.
    Raises UnknownKey, or RotationConflict when another process changed the set first."""
    version = read_version(session)
    row = session.get(SigningKey, kid) if isinstance(kid, str) else None
    if row is None:
        raise UnknownKey(kid)
    _claim(session, version, now)
    result = {"kid": row.kid, "alg": row.alg, "previous_state": row.state,
              "promoted": None, "pending": None}
    if row.state == ACTIVE:
        promoted = _keys(session, PENDING).get(row.alg) or _add(
            session, new_key(row.alg, sealer, now))
        promoted.state, promoted.activated_at = ACTIVE, now
        result["promoted"] = promoted.kid
    if row.state in (ACTIVE, PENDING):
        result["pending"] = _add(session, new_key(row.alg, sealer, now)).kid
    session.delete(row)
    audit.record(session, "key.revoked", actor=actor, details=dict(result))
    return result
