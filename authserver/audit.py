"""The audit log: ``record()`` inside the caller's transaction; a hash chain; ``verify()``.

``record()`` only queues the event on the session. Right before that session commits, the
queued events are appended to the chain: the chain head row is locked (``FOR UPDATE`` on
PostgreSQL; SQLite write transactions are already serialised), each event gets the next
sequence number and ``hash = SHA-256(prev_hash ‖ canonical event)``. So an action and its
event commit together or not at all, concurrent writers keep one linear chain, and the lock is
held only for the last moment of the transaction. After commit each event is also written as
one JSON line to the ``authserver.audit`` logger (for a SIEM).

Events carry ids, never values: a details key that names a secret is refused outright.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
from dataclasses import dataclass

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from . import clock
from .models.audit_event import AuditChainHead, AuditEvent

log = logging.getLogger("authserver.audit")

GENESIS = "0" * 64
_QUEUE = "authserver.audit.queue"
_WRITTEN = "authserver.audit.written"

# Never a value for these: an event says *which* token/client, not what it is.
FORBIDDEN_DETAIL_KEYS = frozenset({
    "password", "secret", "client_secret", "token", "access_token", "refresh_token",
    "id_token", "code", "code_verifier", "assertion", "client_assertion", "pepper", "private_key",
})


@dataclass(frozen=True)
class RequestContext:
    ip: str | None = None
    request_id: str | None = None


# Set by the web layer per request (and by the CLI); read here so domain code needs no Flask.
_NO_CONTEXT = RequestContext()
current_context: contextvars.ContextVar[RequestContext] = contextvars.ContextVar(
    "authserver_audit_context", default=_NO_CONTEXT  # noqa: B039 - frozen, immutable
)


def record(
    session: Session,
    type: str,
    *,
    actor: str,
    outcome: str = "success",
    client_id: str | None = None,
    details: dict | None = None,
) -> None:
    """Queue an event; it is written in the same transaction, right before commit."""
    if "." not in type:
        raise ValueError("audit event types are dotted noun.verb names")
    details = dict(details or {})
    bad = FORBIDDEN_DETAIL_KEYS.intersection(k.lower() for k in details)
    if bad:
        raise ValueError(f"audit details may not carry {sorted(bad)}")
    ctx = current_context.get()
    session.info.setdefault(_QUEUE, []).append({
        "time": clock.now(), "type": type, "outcome": outcome, "actor": actor,
        "client_id": client_id, "ip": ctx.ip, "request_id": ctx.request_id,
        "details": json.dumps(details, sort_keys=True, separators=(",", ":"), default=str),
    })


def canonical(ev: dict | AuditEvent, seq: int) -> bytes:
    get = ev.get if isinstance(ev, dict) else (lambda k: getattr(ev, k))
    body = {
        "seq": seq,
        "time": get("time").isoformat(timespec="microseconds"),
        "type": get("type"), "outcome": get("outcome"), "actor": get("actor"),
        "client_id": get("client_id"), "ip": get("ip"), "request_id": get("request_id"),
        "details": get("details"),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def chain_hash(prev_hash: str, payload: bytes) -> str:
    return hashlib.sha256(prev_hash.encode() + payload).hexdigest()


def _lock_head(session: Session) -> AuditChainHead:
    head = session.scalars(
        select(AuditChainHead).where(AuditChainHead.id == 1).with_for_update()
    ).first()
    if head is None:
        head = AuditChainHead(id=1, seq=0, last_hash=GENESIS)
        session.add(head)
        session.flush()  # a concurrent first writer fails on the primary key and retries
    return head


@event.listens_for(Session, "before_commit")
def _append_queued(session: Session) -> None:
    queued = session.info.pop(_QUEUE, None)
    if not queued:
        return
    head = _lock_head(session)
    seq, prev = head.seq, head.last_hash
    written = []
    for ev in queued:
        seq += 1
        ev["hash"] = chain_hash(prev, canonical(ev, seq))
        row = AuditEvent(seq=seq, prev_hash=prev, **ev)
        session.add(row)
        written.append(row)
        prev = ev["hash"]
    head.seq, head.last_hash = seq, prev
    session.flush()
    session.info[_WRITTEN] = written


@event.listens_for(Session, "after_commit")
def _stream_written(session: Session) -> None:
    # Imported here: the `authserver` command imports this module, and prometheus_client must
    # not be imported before `serve` has set PROMETHEUS_MULTIPROC_DIR (metrics.py).
    from . import metrics

    for row in session.info.pop(_WRITTEN, ()):
        log.info(json.dumps(as_dict(row), sort_keys=True))
        if row.type == "token.issued":  # counted once the issuance is durable
            metrics.token_issued(json.loads(row.details).get("grant_type"), row.client_id)


@event.listens_for(Session, "after_rollback")
def _drop_queued(session: Session) -> None:
    session.info.pop(_QUEUE, None)
    session.info.pop(_WRITTEN, None)


def as_dict(row: AuditEvent) -> dict:
    """The public shape of an event (CONTRACT §5)."""
    return {
        "id": str(row.seq),
        "time": row.time.isoformat().replace("+00:00", "Z"),
        "type": row.type, "outcome": row.outcome, "actor": row.actor,
        "client_id": row.client_id, "ip": row.ip, "request_id": row.request_id,
        "details": json.loads(row.details),
    }


@dataclass(frozen=True)
class Break:
    seq: int
    reason: str


def verify(session: Session, batch: int = 5000) -> Break | None:
    """Walk the chain; the first broken entry, or None when intact."""
    prev, expected_seq, last_id = GENESIS, 1, None
    while True:
        query = select(AuditEvent).order_by(AuditEvent.seq).limit(batch)
        if last_id is not None:
            query = query.where(AuditEvent.seq > last_id)
        rows = session.scalars(query).all()
        for row in rows:
            if row.seq != expected_seq:
                return Break(expected_seq, "event missing (sequence gap)")
            if row.prev_hash != prev:
                return Break(row.seq, "previous-hash link broken")
            if chain_hash(prev, canonical(row, row.seq)) != row.hash:
                return Break(row.seq, "event content altered")
            prev, expected_seq, last_id = row.hash, expected_seq + 1, row.seq
        if len(rows) < batch:
            break
    head = session.get(AuditChainHead, 1)
    if head is None:
        return None if expected_seq == 1 else Break(expected_seq - 1, "chain head missing")
    if head.seq != expected_seq - 1 or head.last_hash != prev:
        return Break(expected_seq, "newest events missing (head does not match)")
    return None
