"""The key set as one process sees it: loaded once, re-read when its version changes.

Every ``refresh_seconds`` (≤ 4 s) the first request (``tick``) asks the database for the
key-set version, one indexed single-row read; only a changed version reloads and unseals keys.
So every process signs with a newly promoted key within that bound (CONTRACT §4: within 5
seconds), and the hot path (signing, serving the JWKS) touches no database otherwise. The same
tick runs the scheduled rotation and the purge of expired keys; the compare-and-swap in
rotation.py makes exactly one process win when several notice at once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from .. import clock
from ..config import Settings
from ..db import READ_ONLY, retry_transient, transaction
from ..models.signing_key import ACTIVE, PENDING, RETIRED, SigningKey
from ..security.aead import Sealer
from . import rotation
from .store import LoadedKey

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    version: int
    keys: tuple[LoadedKey, ...]
    signing: dict[str, LoadedKey]  # alg -> the one active key
    verifying: dict[str, LoadedKey]  # kid -> every published key (pending, active, retired)
    jwks_body: bytes  # pre-encoded: served as is
    active_since: object  # earliest activated_at among active keys (for the schedule)
    next_purge: object  # earliest purge_after among retired keys, or None


class KeySet:
    def __init__(self, session_factory: Callable[[], Session], sealer: Sealer, settings: Settings):
        self._session_factory = session_factory
        self._sealer = sealer
        self._settings = settings
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._checked_at = float("-inf")

    # -- reads ------------------------------------------------------------------------------

    def tick(self) -> None:
        """Called before each request, outside any database transaction (an SQLite writer
        inside the request would otherwise wait on itself): re-check when the interval is up."""
        if time.monotonic() - self._checked_at < self._settings.key_refresh_seconds:
            return
        try:
            retry_transient(self.refresh)
        except SQLAlchemyError as exc:
            # The database is gone or briefly unreachable: keep serving the keys already
            # loaded (JWKS, verification) and try again after the next interval instead of
            # failing every request here (/healthz, /readyz must answer); what needs the
            # database or missing keys fails on its own.
            log.warning("key set refresh failed (%s); %s", type(exc).__name__,
                        "using the loaded key set" if self._snapshot else "no keys loaded")
            self._checked_at = time.monotonic()

    def snapshot(self) -> Snapshot:
        if self._snapshot is None:
            self.refresh()
        if self._snapshot is None:
            raise RuntimeError("no signing keys")
        return self._snapshot

    def signing_key(self, alg: str) -> LoadedKey:
        return self.snapshot().signing[alg]

    def verification_key(self, kid: str) -> LoadedKey | None:
        """A published key of ours (pending ones included: see refresh)."""
        return self.snapshot().verifying.get(kid)

    def jwks_body(self) -> bytes:
        return self.snapshot().jwks_body

    @property
    def loaded(self) -> bool:
        return self._snapshot is not None

    # -- refresh ----------------------------------------------------------------------------

    def refresh(self, force: bool = False) -> None:
        """Re-read the version; reload on change; run scheduled maintenance."""
        if not self._lock.acquire(blocking=self._snapshot is None or force):
            return  # another thread is refreshing; the current snapshot is still good
        try:
            with self._session_factory() as session:
                self._maintain(session)
                # Every few seconds before a request: on SQLite the version (and the keys,
                # when it moved) are read in a deferred transaction, never behind a writer.
                session.connection(execution_options={READ_ONLY: True})
                version = rotation.read_version(session)
                if force or self._snapshot is None or version != self._snapshot.version:
                    self._snapshot = self._load(session, version)
            self._checked_at = time.monotonic()
        finally:
            self._lock.release()

    def _maintain(self, session: Session) -> None:
        now = clock.now()
        snap = self._snapshot
        # Write transactions only when the loaded snapshot says something is due: on SQLite
        # each one takes the database's write lock, and this runs every few seconds.
        try:
            if snap is None or not snap.signing:
                with transaction(session):
                    rotation.ensure_keys(session, self._sealer, now)
            elif rotation.rotation_due(snap.active_since, self._settings, now):
                with transaction(session):
                    rotation.rotate(session, self._sealer, self._settings, now, scheduled=True,
                                    expected_version=snap.version)
                log.info("signing keys rotated on schedule")
            if snap is not None and snap.next_purge is not None and now >= snap.next_purge:
                with transaction(session):
                    rotation.purge_expired(session, now)
        except (rotation.RotationConflict, IntegrityError):
            pass  # another process did it first; we load its result below

    def _load(self, session: Session, version: int | None) -> Snapshot:
        rows = session.scalars(select(SigningKey).order_by(SigningKey.created_at)).all()
        keys = tuple(LoadedKey.from_row(r, self._sealer) for r in rows)
        signing = {k.alg: k for k in keys if k.state == ACTIVE}
        activated = [r.activated_at for r in rows if r.state == ACTIVE and r.activated_at]
        purges = [r.purge_after for r in rows if r.state == RETIRED and r.purge_after]
        body = json.dumps({"keys": [k.public_jwk for k in keys]}, separators=(",", ":"))
        return Snapshot(
            version=version or 0,
            keys=keys,
            signing=signing,
            # Pending keys verify too: another process may have promoted one already (this one
            # learns it within key_refresh_seconds). Without them, a token signed there was
            # "inactive" here, and its revocation was silently ignored (found by the scale-out
            # test under load). Only this server holds their private halves.
            verifying={k.kid: k for k in keys if k.state in (ACTIVE, RETIRED, PENDING)},
            jwks_body=body.encode(),
            active_since=min(activated) if activated else None,
            next_purge=min(purges) if purges else None,
        )
