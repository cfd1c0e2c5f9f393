"""The audit log: ``record()`` inside the caller's transaction; a hash chain; ``verify()``.

``record()`` queues the event on the session; right before that session commits, the queued
events are inserted (one INSERT, no lock). So an action and its event commit together or not
at all, and concurrent transactions do not queue behind each other.

The hash chain is sealed a moment later (``seal``, at most every 0.1 s per process, off
the request's thread, and by ``authserver audit verify``): under a lock on the chain head row,
each committed, unsealed event gets the next sequence number and
``hash = SHA-256(prev_hash ‖ canonical event)``. The audit relay's events (client-credentials
issuances, audit_relay.py) are sealed as they are inserted instead (``append_sealed``).
Editing or deleting a sealed event, or deleting the newest ones, is detected by ``verify``.
The trade-off, measured: holding the head lock until each token's commit serialised every
commit behind one fsync (about 100 tokens/s on PostgreSQL); sealing asynchronously leaves an
event unprotected for about a second after its commit. After commit each event is also written
as one JSON line to the ``authserver.audit`` logger (for a SIEM).

Events carry ids, never values: a details key that names a secret is refused outright.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from json.encoder import encode_basestring_ascii as _quote

from sqlalchemy import bindparam, event, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from . import clock, sqlite_writes
from .db import transaction
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
    if not session.in_transaction():
        session.begin()  # so that the commit that writes the event happens
    session.info.setdefault(_QUEUE, []).append(
        event_row(type, actor=actor, outcome=outcome, client_id=client_id, details=details))


def event_row(type: str, *, actor: str, outcome: str = "success", client_id: str | None = None,
              details: dict | None = None) -> dict:
    """The row of one event, with the request's context (record() and AuditWriter)."""
    if "." not in type:
        raise ValueError("audit event types are dotted noun.verb names")
    details = dict(details or {})
    bad = FORBIDDEN_DETAIL_KEYS.intersection(k.lower() for k in details)
    if bad:
        raise ValueError(f"audit details may not carry {sorted(bad)}")
    ctx = current_context.get()
    return {
        "time": clock.now(), "type": type, "outcome": outcome, "actor": actor,
        "client_id": client_id, "ip": ctx.ip, "request_id": ctx.request_id,
        "details": json.dumps(details, sort_keys=True, separators=(",", ":"), default=str),
    }


def _json_text(value: str | None) -> str:
    """A string as JSON (ASCII, as json.dumps writes it), or null."""
    return "null" if value is None else _quote(value)


def canonical(ev: Mapping | AuditEvent, seq: int) -> bytes:
    """The hashed form of an event: ``json.dumps`` of its fields and ``seq``, keys sorted,
    compact, ASCII, written out directly (sealing runs over every event; the generic encoder
    was most of its cost, measured). tests/unit/test_audit_canonical.py holds it to the
    generic encoder's bytes, which every chain sealed so far was hashed over."""
    get = ev.get if isinstance(ev, Mapping) else (lambda k: getattr(ev, k))
    q = _json_text
    # The time in UTC whatever the database session's time zone: a sealed event's hash must
    # not depend on the reader's TimeZone setting.
    when = get("time").astimezone(UTC).isoformat(timespec="microseconds")
    return (f'{{"actor":{q(get("actor"))},"client_id":{q(get("client_id"))},'
            f'"details":{q(get("details"))},"ip":{q(get("ip"))},'
            f'"outcome":{q(get("outcome"))},"request_id":{q(get("request_id"))},'
            f'"seq":{int(seq)},"time":{_quote(when)},"type":{q(get("type"))}}}').encode()


def chain_hash(prev_hash: str, payload: bytes) -> str:
    return hashlib.sha256(prev_hash.encode() + payload).hexdigest()


@event.listens_for(Session, "before_commit")
def _insert_queued(session: Session) -> None:
    """Insert the queued events, unsealed, in the committing transaction: one INSERT, no lock,
    so concurrent transactions commit in parallel (PostgreSQL groups their WAL flushes)."""
    queued = session.info.pop(_QUEUE, None)
    if not queued:
        return
    insert_events(session.connection(), queued)
    session.info[_WRITTEN] = queued


# Columns an event row carries at insert (event_row); the chain columns come with sealing.
_COLUMNS = ("time", "type", "outcome", "actor", "client_id", "ip", "request_id", "details")
_LINKED = (*_COLUMNS, "seq", "prev_hash", "hash")  # an event sealed as it is inserted
MAX_ROWS_PER_INSERT = 500  # x 11 parameters: far below PostgreSQL's and SQLite's limits


@functools.lru_cache(maxsize=64)
def _insert_sql(dialect: Dialect, rows: int, columns: tuple = _COLUMNS) -> tuple[str, tuple]:
    """The multi-row INSERT for ``rows`` events in the dialect's parameter style, and each
    column's bind processor (UTC handling of UTCDateTime, SQLite's datetime text). Written
    out once per row count and dialect: compiling a multi-row Core insert per batch cost
    more than executing it (measured under load)."""
    quote = dialect.identifier_preparer.quote
    mark = _mark(dialect)
    row = "(" + ", ".join([mark] * len(columns)) + ")"
    table = AuditEvent.__table__
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
           f"VALUES {', '.join([row] * rows)}")
    return sql, tuple(table.c[c].type.dialect_impl(dialect).bind_processor(dialect)
                      for c in columns)


def _mark(dialect: Dialect) -> str:
    return "?" if dialect.paramstyle == "qmark" else "%s"


def _chunks(dialect: Dialect, events: list[dict], columns: tuple = _COLUMNS):
    """(sql, parameters) of the INSERT statements for ``events``, MAX_ROWS_PER_INSERT each."""
    for start in range(0, len(events), MAX_ROWS_PER_INSERT):
        chunk = events[start:start + MAX_ROWS_PER_INSERT]
        sql, processors = _insert_sql(dialect, len(chunk), columns)
        params = []
        for ev in chunk:
            for name, process in zip(columns, processors, strict=True):
                params.append(process(ev[name]) if process else ev[name])
        yield sql, tuple(params)


def insert_events(conn: Connection, events: list[dict]) -> None:
    """One unsealed INSERT statement for all ``events`` (event_row dicts), in the caller's
    transaction (record(): sealed later by ``seal``)."""
    for sql, params in _chunks(conn.dialect, events):
        conn.exec_driver_sql(sql, params)


# PostgreSQL: one constant statement for any number of events (prepared once by psycopg;
# a multi-row VALUES list is a new statement per size, and psycopg parses statements over
# 4 KiB on every execution: measured 2 ms of CPU for 64 events). The events travel as one
# JSON parameter (Python's C encoder; array parameters were escaped element by element in
# Python), typed by the table's own row type.
#
# The relay's batches (audit_relay.py) are sealed as they are inserted, in one statement: the
# chain head moves from the head the relay last wrote (optimistic: it is the only writer of
# these events) and the events are inserted only if it did. Another sealer moving the head
# meanwhile makes it insert nothing (READ COMMITTED re-checks the WHERE after waiting for the
# row), and the batch is done again under the head's lock (_append_locked).
_PG_APPEND_SEALED = (
    "WITH moved AS (UPDATE audit_chain SET seq = %s, last_hash = %s "
    "WHERE id = 1 AND seq = %s AND last_hash = %s RETURNING 1) "
    "INSERT INTO audit_events (time, type, outcome, actor, client_id, ip, request_id, "
    "details, seq, prev_hash, hash) SELECT time, type, outcome, actor, client_id, ip, "
    "request_id, details, seq, prev_hash, hash "
    "FROM json_populate_recordset(NULL::audit_events, %s::json) "
    "WHERE EXISTS (SELECT FROM moved)")
_PG_APPEND_LINKED = (
    "INSERT INTO audit_events (time, type, outcome, actor, client_id, ip, request_id, "
    "details, seq, prev_hash, hash) SELECT time, type, outcome, actor, client_id, ip, "
    "request_id, details, seq, prev_hash, hash "
    "FROM json_populate_recordset(NULL::audit_events, %s::json)")

Head = tuple[int, str]  # (sequence number, hash) of the chain's newest sealed event


def append_sealed(driver, dialect: Dialect, events: list[dict], head: Head | None) -> Head:
    """Commit ``events`` (event_row dicts) as the chain's next links, on a driver connection
    in autocommit mode (db.driver_connection), and return the new head. ``head`` is the
    head this caller wrote last (None: unknown). PostgreSQL: one statement when nobody else
    sealed since (_PG_APPEND_SEALED), else under the head's lock; SQLite: under its write
    lock. An event is written once, sealed: no second write by ``seal`` (measured: that
    update was half of PostgreSQL's work per event)."""
    if dialect.name == "postgresql" and head is not None:
        linked, new_head = _link(events, head)
        cursor = driver.execute(_PG_APPEND_SEALED,
                                (*new_head, *head, _pg_json(linked)))
        if cursor.rowcount == len(events):
            return new_head
    return _append_locked(driver, dialect, events)


def _append_locked(driver, dialect: Dialect, events: list[dict]) -> Head:
    """Lock the chain head (created at the first seal ever), link, insert, move the head."""
    mark = _mark(dialect)
    postgresql = dialect.name == "postgresql"
    if postgresql:
        driver.execute("BEGIN")
    else:
        sqlite_writes.begin_immediate(driver)
    try:
        driver.execute(f"INSERT INTO audit_chain (id, seq, last_hash) VALUES (1, 0, {mark}) "
                       "ON CONFLICT DO NOTHING", (GENESIS,))
        lock = " FOR UPDATE" if postgresql else ""
        head = tuple(driver.execute(
            f"SELECT seq, last_hash FROM audit_chain WHERE id = 1{lock}").fetchone())
        linked, new_head = _link(events, head)
        if postgresql:
            driver.execute(_PG_APPEND_LINKED, (_pg_json(linked),))
        else:
            for sql, params in _chunks(dialect, linked, _LINKED):
                driver.execute(sql, params)
        driver.execute(f"UPDATE audit_chain SET seq = {mark}, last_hash = {mark} WHERE id = 1",
                       new_head)
        driver.commit()
    except BaseException:
        with contextlib.suppress(Exception):
            driver.rollback()
        raise
    return new_head


def _link(events: list[dict], head: Head) -> tuple[list[dict], Head]:
    """The events with the chain columns that follow ``head``, and the head after them."""
    seq, prev = head
    linked = []
    for ev in events:
        seq += 1
        digest = chain_hash(prev, canonical(ev, seq))
        linked.append({**ev, "seq": seq, "prev_hash": prev, "hash": digest})
        prev = digest
    return linked, (seq, prev)


def _pg_json(events: list[dict]) -> str:
    """Events as the one JSON parameter of json_populate_recordset."""
    return json.dumps([{**ev, "time": ev["time"].isoformat()} for ev in events],
                      separators=(",", ":"))


# Events this process committed unsealed, for its Sealer (Sealer.tick): counted after the
# commit, so that a seal started once the count moved finds them. Per process, not per app:
# an app that seals another's events in a test only seals sooner.
_inserted_unsealed = 0


@event.listens_for(Session, "after_commit")
def _stream_written(session: Session) -> None:
    global _inserted_unsealed
    events = session.info.pop(_WRITTEN, ())
    if events:
        _inserted_unsealed += len(events)
    written(events)


def written(events) -> None:
    """After commit: issuances counted, then each event as one JSON log line (for a SIEM)."""
    count_issued(events)
    log_lines(events)


def count_issued(events) -> None:
    """Count the durable issuances among ``events``, once per label set."""
    # Imported here: the `authserver` command imports this module, and prometheus_client must
    # not be imported before `serve` has set PROMETHEUS_MULTIPROC_DIR (metrics.py).
    from . import metrics

    issued: dict[tuple, int] = {}
    for ev in events:
        if ev["type"] == "token.issued":
            labels = (json.loads(ev["details"]).get("grant_type"), ev["client_id"])
            issued[labels] = issued.get(labels, 0) + 1
    for (grant_type, client_id), count in issued.items():
        metrics.token_issued(grant_type, client_id, count)


def log_lines(events) -> None:
    """Each durable event as one JSON log line."""
    if log.isEnabledFor(logging.INFO):
        for ev in events:
            log.info(_log_line(ev))


def _log_line(ev: dict) -> str:
    """``_public(ev)`` as JSON, keys sorted, written out directly: ``details`` is canonical
    JSON already (event_row), so it is inserted, not decoded and encoded again (this runs
    for every token; measured)."""
    q = _json_text
    return (f'{{"actor": {q(ev["actor"])}, "client_id": {q(ev["client_id"])}, '
            f'"details": {ev["details"]}, "ip": {q(ev["ip"])}, "outcome": {q(ev["outcome"])}, '
            f'"request_id": {q(ev["request_id"])}, '
            f'"time": {q(ev["time"].isoformat().replace("+00:00", "Z"))}, '
            f'"type": {q(ev["type"])}}}')


@event.listens_for(Session, "after_rollback")
def _drop_queued(session: Session) -> None:
    session.info.pop(_QUEUE, None)
    session.info.pop(_WRITTEN, None)


def _public(ev: dict) -> dict:
    return {
        "time": ev["time"].isoformat().replace("+00:00", "Z"),
        "type": ev["type"], "outcome": ev["outcome"], "actor": ev["actor"],
        "client_id": ev["client_id"], "ip": ev["ip"], "request_id": ev["request_id"],
        "details": json.loads(ev["details"]),
    }


def as_dict(row: AuditEvent) -> dict:
    """The public shape of an event (CONTRACT §5); ``id`` is the row's, stable from insert."""
    ev = {c: getattr(row, c) for c in ("time", "type", "outcome", "actor", "client_id", "ip",
                                       "request_id", "details")}
    return {"id": str(row.id), **_public(ev)}


# -- sealing: the hash chain ------------------------------------------------------------------

def seal(session: Session, batch: int = 5000) -> int:
    """Chain every committed, unsealed event: lock the head row (one sealer at a time across
    processes: ``FOR UPDATE`` on PostgreSQL, the write lock on SQLite), give each event the
    next sequence number and ``hash = SHA-256(prev_hash ‖ canonical event)``, move the head.
    Returns how many events it sealed. Runs in its own transaction."""
    # Core, not the ORM: at thousands of tokens per second this runs over thousands of rows
    # a second (_write_links: one statement on PostgreSQL).
    events, heads = AuditEvent.__table__, AuditChainHead.__table__
    with transaction(session):
        conn = session.connection()
        # Nothing unsealed (the relay seals its own events): no lock taken, so the ticks of
        # every worker do not queue the relay's head updates behind them.
        if conn.execute(select(events.c.id).where(events.c.seq.is_(None)).limit(1)).first() \
                is None:
            return 0
        locked = select(heads).where(heads.c.id == 1).with_for_update()
        head = conn.execute(locked).first()
        if head is None:  # the first seal ever; two may race to create the head
            first = {"id": 1, "seq": 0, "last_hash": GENESIS}
            if conn.dialect.name == "postgresql":
                conn.execute(pg_insert(heads).values(first).on_conflict_do_nothing())
            else:  # SQLite: the write lock is held, nobody races
                conn.execute(insert(heads).values(first))
            head = conn.execute(locked).first()
        seq, prev = head.seq, head.last_hash
        rows = conn.execute(select(events).where(events.c.seq.is_(None))
                            .order_by(events.c.id).limit(batch)).all()
        if not rows:
            return 0
        chained = []
        for row in rows:
            seq += 1
            digest = chain_hash(prev, canonical(row._mapping, seq))
            chained.append({"row_id": row.id, "seq": seq, "prev_hash": prev, "hash": digest})
            prev = digest
        _write_links(conn, chained)
        conn.execute(update(heads).where(heads.c.id == 1).values(seq=seq, last_hash=prev))
    return len(rows)


_PG_LINKS = text(
    "UPDATE audit_events AS e SET seq = v.seq, prev_hash = v.prev_hash, hash = v.hash "
    "FROM json_to_recordset(CAST(:links AS json)) "
    "AS v(row_id bigint, seq bigint, prev_hash varchar, hash varchar) WHERE e.id = v.row_id")


def _write_links(conn: Connection, chained: list[dict]) -> None:
    """The chain columns of a sealed batch. PostgreSQL: one UPDATE over one JSON parameter
    (per-row updates, even pipelined, cost tens of microseconds of client CPU per event;
    array parameters are escaped element by element in Python)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_PG_LINKS, {"links": json.dumps(chained, separators=(",", ":"))})
        return
    events = AuditEvent.__table__
    conn.execute(update(events).where(events.c.id == bindparam("row_id"))
                 .values(seq=bindparam("seq"), prev_hash=bindparam("prev_hash"),
                         hash=bindparam("hash")), chained)


def seal_all(session: Session) -> int:
    total = 0
    while (n := seal(session)) > 0:
        total += n
    return total


class Sealer:
    """Per process: seals pending events at most every ``interval`` seconds. ``tick()``, called
    before each request, starts the seal on a short-lived thread of its own and returns: a
    second's worth of events is milliseconds of hashing, and a seal waits for the chain-head
    lock while another process seals; the request that ran it used to pay both, which showed
    in the p99 (measured). Every 0.1 s, not 0.5: a seal is Python work that holds the GIL
    against the process's request threads, and smaller seals hold it in shorter stretches
    (measured at 64 connections: token p99 70 -> 37 ms, same throughput). ``wait()`` returns
    once no seal runs (tests, shutdown).

    Every ``interval`` only while this process has inserted unsealed events (audit.record's,
    in a transaction) since its last seal; otherwise once every ``SWEEP_SECONDS``, for what
    others left unsealed (the CLI, a process that ended before its seal). The busiest
    requests, client-credentials tokens, insert nothing here (the audit relay seals their
    events as it writes them): polling the database ten times a second per process, each
    time on a new thread, for nothing cost measurable throughput (session 6, README).

    At most ``BATCH`` events per tick: a seal holds the chain head's lock, and the audit
    relay's commits (every client-credentials token) wait for it. A backlog — a burst of
    sign-ins or code exchanges, or the bench's tens of thousands of minted codes — sealed
    5,000 at a time held it for hundreds of milliseconds (token p99 333–793 ms at 16
    connections, measured); 500 per tick still seals 5,000 events a second per process."""

    BATCH = 500
    SWEEP_SECONDS = 1.0

    def __init__(self, session_factory, interval: float = 0.1):
        self._session_factory = session_factory
        self._interval = interval
        self._last = float("-inf")
        self._sealed_upto = -1  # _inserted_unsealed when the last seal started; -1: unknown
        self._lock = threading.Lock()  # held while a seal runs, released by its thread
        self._pid = os.getpid()

    def tick(self) -> None:
        now = time.monotonic()
        since = now - self._last
        if since < self._interval:
            return
        if since < self.SWEEP_SECONDS and self._sealed_upto == _inserted_unsealed:
            return  # nothing of ours to seal, and the sweep is not due
        if self._pid != os.getpid():  # forked: the parent's seal thread does not exist here
            self._pid, self._lock = os.getpid(), threading.Lock()
        if not self._lock.acquire(blocking=False):
            return
        self._last = now
        self._sealed_upto = _inserted_unsealed
        try:
            threading.Thread(target=self._seal, name="audit-sealer", daemon=True).start()
        except BaseException:
            self._lock.release()
            raise

    def _seal(self) -> None:
        try:
            if self.seal_now() >= self.BATCH:
                self._sealed_upto = -1  # more may wait: seal again at the next interval
        finally:
            self._lock.release()

    def seal_now(self) -> int:
        try:
            with self._session_factory() as session:
                return seal(session, batch=self.BATCH)
        except SQLAlchemyError as exc:  # retried on the next tick; events stay unsealed
            log.warning("audit sealing failed (%s)", type(exc).__name__)
            self._sealed_upto = -1
            return 0

    def wait(self, timeout: float = 30.0) -> None:
        if self._lock.acquire(timeout=timeout):
            self._lock.release()


@dataclass(frozen=True)
class Break:
    seq: int
    reason: str


def verify(session: Session, batch: int = 5000) -> Break | None:
    """Walk the chain; the first broken entry, or None when intact. Seal pending events
    first (``seal_all``) to cover everything committed."""
    prev, expected_seq, last_id = GENESIS, 1, None
    while True:
        query = (select(AuditEvent).where(AuditEvent.seq.is_not(None))
                 .order_by(AuditEvent.seq).limit(batch))
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
