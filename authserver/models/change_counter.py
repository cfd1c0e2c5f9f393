"""Change counters: one row per cached entity kind; a change to that kind bumps its counter in
the same transaction, so every process can notice it with one cheap read (client_cache.py)."""

from __future__ import annotations

from sqlalchemy import BigInteger, String, event, insert, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..db import Base

CLIENTS = "clients"


class ChangeCounter(Base):
    __tablename__ = "change_counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


# -- bumping: in the transaction that changes a watched entity ---------------------------------

_PENDING = "authserver.change_counters.pending"
_local_changes: dict[str, int] = {}  # per process: committed changes seen here, by name


def local_changes(name: str) -> int:
    """How many transactions of this process changed ``name`` (cheap, no database)."""
    return _local_changes.get(name, 0)


def _watched(obj) -> str | None:
    from .client import Client

    return CLIENTS if isinstance(obj, Client) else None


@event.listens_for(Session, "before_flush")
def _bump(session: Session, _context, _instances) -> None:
    names = {n for obj in (*session.new, *session.dirty, *session.deleted)
             if (n := _watched(obj)) is not None}
    pending = session.info.setdefault(_PENDING, set())
    for name in names - pending:  # once per transaction and name
        table, conn = ChangeCounter.__table__, session.connection()
        bumped = conn.execute(
            update(table).where(table.c.name == name).values(value=table.c.value + 1))
        if bumped.rowcount == 0:  # the migration's row is gone (restored backup, by hand)
            conn.execute(insert(table).values(name=name, value=1))
        pending.add(name)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    for name in session.info.pop(_PENDING, ()):
        _local_changes[name] = _local_changes.get(name, 0) + 1


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)
