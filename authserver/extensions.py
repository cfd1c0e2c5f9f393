"""The per-app objects, built once in create_app and kept in app.extensions["authserver"]."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import Flask, current_app, g
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .audit_writer import AuditWriter
from .config import Settings
from .keyring import KeySet, Signer
from .oauth.client_cache import ClientCache
from .security.aead import Sealer
from .security.tokens import Digester


@dataclass
class Services:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    sealer: Sealer
    digester: Digester
    keyset: KeySet
    signer: Signer
    audit_sealer: object  # audit.Sealer (typed loosely: audit imports models, not Flask)
    clients: ClientCache
    audit_writer: AuditWriter  # events that accompany no other write, via the audit relay
    extra: dict = field(default_factory=dict)  # per-feature objects (limiter, oauth server …)

    def tick(self) -> None:
        """Before each request (Flask's and the fast path's), outside any transaction: pick
        up key and client changes made elsewhere, start a seal of the audit chain if due."""
        self.keyset.tick()
        self.audit_sealer.tick()
        self.clients.tick()

    def close(self) -> None:
        """Stop this process's audit relay thread if it has one, let a running seal finish,
        then close the pool's connections (tests, shutdown)."""
        self.audit_writer.close()
        self.audit_sealer.wait()
        self.engine.dispose()


def services(app: Flask | None = None) -> Services:
    return (app or current_app).extensions["authserver"]


def db_session() -> Session:
    """The request's session, opened on first use and closed at teardown."""
    session = g.get("_authserver_session")
    if session is None:
        session = g._authserver_session = services().session_factory()
    return session


def close_db_session(_exc=None) -> None:
    session = g.pop("_authserver_session", None)
    if session is not None:
        session.close()
