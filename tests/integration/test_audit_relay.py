"""The audit relay (audit_relay.py) and its client (audit_writer.py) against the real
databases.

Covered:
- malformed frames (invalid or too deeply nested JSON, missing/extra fields, wrong types, a
  time without a zone) are answered REFUSED, write nothing, and leave that connection and the
  others working; an oversized length prefix closes the connection, writes nothing, and the
  relay goes on serving new connections;
- events are sealed as they are inserted (seq, prev_hash and hash set when COMMITTED is
  answered, no ``audit.seal``), and the chain verifies;
- relay batches interleaved with ``audit.record`` + ``audit.seal`` (the relay's cached head
  goes stale: the locked path), ``append_sealed`` called directly with stale heads, and two
  relays racing a sealer: unique consecutive sequence numbers, ``verify`` passes;
- the writer: reconnects after the relay closed its connection (a restarted relay on the same
  path); a relay that never answers fails the write after WAIT_SECONDS and its late answer
  never reaches the next write; a relay that closes without answering fails that write only;
- a database refusing the insert: every event of the batch REFUSED, later batches commit once
  the refusal is gone, with no gap in the chain.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from authserver import audit, audit_relay, audit_writer, db
from authserver.audit_writer import AuditUnavailable, AuditWriter
from authserver.models import AuditEvent
from authserver.models.audit_event import AuditChainHead
from tests.support.databases import refusing_token_events
from tests.support.polling import wait_for
from tests.support.relays import FakeRelay, recv_exactly, relay_thread

COMMITTED, REFUSED = audit_relay.COMMITTED, audit_relay.REFUSED


# -- helpers ----------------------------------------------------------------------------------

def _event(n: int, type: str = "token.issued") -> dict:
    return audit.event_row(type, actor="client:relay-test", client_id="relay-test",
                           details={"grant_type": "client_credentials", "n": n})


def _raw(payload: bytes) -> bytes:
    """A frame around arbitrary bytes (audit_relay.frame only frames real events)."""
    return len(payload).to_bytes(4, "big") + payload


def _connect(path: str) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(10)  # a relay that stops answering fails the test, not hangs it
    conn.connect(path)
    return conn


def _send(conn: socket.socket, *events: dict) -> bytes:
    """Send the events' frames at once (one batch at the relay) and read their answers."""
    conn.sendall(b"".join(audit_relay.frame(ev) for ev in events))
    return recv_exactly(conn, len(events))


def _count(app) -> int:
    with app.extensions["authserver"].session_factory() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent))


def _rows(app) -> list[AuditEvent]:
    with app.extensions["authserver"].session_factory() as session:
        return session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()


def _assert_chain(app, expected: int) -> list[AuditEvent]:
    """``expected`` events, all sealed, sequence numbers 1..n, and the chain verifies."""
    rows = _rows(app)
    assert len(rows) == expected
    assert sorted(r.seq for r in rows) == list(range(1, expected + 1)), [r.seq for r in rows]
    with app.extensions["authserver"].session_factory() as session:
        assert audit.verify(session) is None
    return rows


@pytest.fixture
def engine(app):
    return app.extensions["authserver"].engine


@pytest.fixture
def relay(engine):
    relay = audit_relay.ThreadRelay(engine)
    yield relay
    relay.close()


@pytest.fixture
def socket_dir():
    # Short: AF_UNIX paths are limited to ~107 bytes, pytest's tmp_path can be longer.
    path = tempfile.mkdtemp(prefix="relay-test-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- malformed input ---------------------------------------------------------------------------

def _valid_fields() -> dict:
    ev = _event(0)
    return {**ev, "time": ev["time"].isoformat()}


MALFORMED = {
    "invalid JSON": b"{not json",
    "invalid UTF-8": b'{"type": "\xff\xfe"}',
    "not an object": json.dumps([_valid_fields()]).encode(),
    "missing field": json.dumps({k: v for k, v in _valid_fields().items()
                                 if k != "actor"}).encode(),
    "extra field": json.dumps({**_valid_fields(), "seq": 1}).encode(),
    "actor not a string": json.dumps({**_valid_fields(), "actor": 7}).encode(),
    "details an object": json.dumps({**_valid_fields(), "details": {"n": 1}}).encode(),
    "type null": json.dumps({**_valid_fields(), "type": None}).encode(),
    "client_id a number": json.dumps({**_valid_fields(), "client_id": 3}).encode(),
    "time not a time": json.dumps({**_valid_fields(), "time": "yesterday"}).encode(),
    "time without zone": json.dumps({**_valid_fields(),
                                     "time": datetime(2024, 5, 1, 12).isoformat()}).encode(),
}


@pytest.mark.parametrize("payload", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_event_is_refused_and_nothing_is_written(app, relay, payload):
    other = _connect(relay.path)  # open before the bad frame: must be unaffected
    conn = _connect(relay.path)
    try:
        conn.sendall(_raw(payload))
        assert recv_exactly(conn, 1) == REFUSED
        assert _count(app) == 0
        # The same connection, the one opened before, and a new one all still commit.
        assert _send(conn, _event(1)) == COMMITTED
        assert _send(other, _event(2)) == COMMITTED
        with _connect(relay.path) as fresh:
            assert _send(fresh, _event(3)) == COMMITTED
    finally:
        conn.close()
        other.close()
    _assert_chain(app, 3)


def test_deeply_nested_json_is_refused_and_the_relay_survives(app, relay):
    """Nesting within MAX_FRAME makes json.loads raise RecursionError, not ValueError: the
    frame must be refused like any other malformed one, not end the relay's loop."""
    with _connect(relay.path) as conn:
        conn.sendall(_raw(b"[" * 5000))
        assert recv_exactly(conn, 1) == REFUSED
    assert _count(app) == 0
    with _connect(relay.path) as conn:
        assert _send(conn, _event(1)) == COMMITTED
    _assert_chain(app, 1)


def test_an_oversized_frame_closes_the_connection_and_the_relay_goes_on(app, relay):
    with _connect(relay.path) as conn:
        conn.sendall((audit_relay.MAX_FRAME + 1).to_bytes(4, "big") + b"{")
        assert conn.recv(1) == b""  # closed by the relay, no answer byte
    # A valid frame following an oversized prefix in the same send is not taken either.
    with _connect(relay.path) as conn:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall((2**32 - 1).to_bytes(4, "big") + audit_relay.frame(_event(0)))
        assert conn.recv(1) == b""
    assert _count(app) == 0
    with _connect(relay.path) as conn:
        assert _send(conn, _event(1)) == COMMITTED
    _assert_chain(app, 1)


# -- sealed at insert ---------------------------------------------------------------------------

def test_events_are_sealed_as_they_are_inserted(app, relay):
    first = _event(1)
    with _connect(relay.path) as conn:
        assert _send(conn, first) == COMMITTED
        # Right after the answer, from another session, no audit.seal: already a chain link.
        [row] = _rows(app)
        assert (row.seq, row.prev_hash) == (1, audit.GENESIS)
        assert row.hash == audit.chain_hash(audit.GENESIS, audit.canonical(first, 1))
        # A batch, and an event whose time is in another zone (hashed and stored as UTC).
        elsewhere = {**_event(2), "time": datetime.now(timezone(timedelta(hours=2)))}
        assert _send(conn, _event(3), elsewhere, _event(4)) == COMMITTED * 3
    rows = _rows(app)
    assert all(r.seq is not None and r.prev_hash and r.hash for r in rows)
    for prev, row in zip(rows, rows[1:], strict=False):
        assert row.prev_hash == prev.hash
    stored = next(r for r in rows if json.loads(r.details)["n"] == 2)
    assert stored.time == elsewhere["time"] and stored.time.utcoffset() == timedelta(0)
    with app.extensions["authserver"].session_factory() as session:
        head = session.get(AuditChainHead, 1)
        assert (head.seq, head.last_hash) == (4, rows[-1].hash)
    _assert_chain(app, 4)


# -- interleaving with the ORM's events and the sealer --------------------------------------

def test_relay_batches_interleaved_with_recorded_and_sealed_events(app, relay, backend,
                                                                   monkeypatch):
    locked = []  # batches that took the head's lock (_append_locked)
    original = audit._append_locked
    monkeypatch.setattr(audit, "_append_locked",
                        lambda driver, dialect, events: locked.append(len(events))
                        or original(driver, dialect, events))
    svc = app.extensions["authserver"]
    with _connect(relay.path) as conn:
        assert _send(conn, _event(1), _event(2), _event(3)) == COMMITTED * 3
        assert _send(conn, _event(4), _event(5)) == COMMITTED * 2
        before = len(locked)
        # Flask-path events: inserted unsealed with their transaction, then sealed. The
        # relay's cached head is stale now.
        with svc.session_factory() as session:
            for n in range(2):
                audit.record(session, "client.updated", actor="system", details={"n": n})
            session.commit()
            assert audit.seal(session) == 2
        assert _send(conn, _event(6), _event(7)) == COMMITTED * 2
        assert _send(conn, _event(8)) == COMMITTED
    if backend == "postgresql":
        # The first batch had no cached head, the second moved it optimistically; after the
        # seal the optimistic statement found the head moved and the batch took the lock once.
        assert before == 1 and locked[before:] == [2], locked
    rows = _assert_chain(app, 10)
    assert [r.type for r in sorted(rows, key=lambda r: r.seq)][5:7] == ["client.updated"] * 2


def test_append_sealed_with_a_stale_head_falls_back_to_the_lock(app, engine):
    """Called directly (as the relay does) with heads that are not the chain's: the batch
    must still follow the real head, never insert a duplicate sequence number."""
    dialect = engine.dialect
    with db.driver_connection(engine) as driver:
        first = audit.append_sealed(driver, dialect, [_event(1), _event(2)], None)
        assert first[0] == 2
        current = audit.append_sealed(driver, dialect, [_event(3)], first)  # fresh: moves on
        assert current[0] == 3
        # Another sealer moves the head: our copy, ``current``, is stale.
        head = audit.append_sealed(driver, dialect, [_event(4)], None)
        stale_heads = [  # each made from the chain's real head at the time
            lambda real: current,                    # an older head of this chain
            lambda real: (0, audit.GENESIS),         # the empty chain's
            lambda real: (real[0], "f" * 64),        # the right seq with another hash
            lambda real: (real[0] + 5, real[1]),     # a head from the future
        ]
        n = 5
        for stale in stale_heads:
            given = stale(head)
            head = audit.append_sealed(driver, dialect, [_event(n), _event(n + 1)], given)
            n += 2
            assert head[0] == n - 1, (given, head)
    newest = max(_assert_chain(app, n - 1), key=lambda r: r.seq)
    with app.extensions["authserver"].session_factory() as session:
        chain = session.get(AuditChainHead, 1)
        assert (chain.seq, chain.last_hash) == head == (newest.seq, newest.hash)


def test_two_relays_and_a_sealer_share_one_chain(app, engine):
    """Two relays (two servers on one database) write concurrently while Flask-path events
    are recorded and sealed: each relay's cached head keeps going stale under the others."""
    svc = app.extensions["authserver"]
    relays = [audit_relay.ThreadRelay(engine) for _ in range(2)]
    answers: list[bytes] = []
    stop = threading.Event()

    def send(path: str, base: int) -> None:
        with _connect(path) as conn:
            for i in range(8):
                answers.append(_send(conn, _event(base + 2 * i), _event(base + 2 * i + 1)))

    def record_and_seal() -> None:
        while not stop.is_set():
            with svc.session_factory() as session:
                audit.record(session, "client.updated", actor="system")
                session.commit()
                audit.seal(session)

    try:
        sealer = threading.Thread(target=record_and_seal)
        sealer.start()
        senders = [threading.Thread(target=send, args=(r.path, 100 * i))
                   for i, r in enumerate(relays * 2)]
        for t in senders:
            t.start()
        for t in senders:
            t.join()
        stop.set()
        sealer.join()
    finally:
        for r in relays:
            r.close()
    assert answers == [COMMITTED * 2] * 32
    with svc.session_factory() as session:
        audit.seal_all(session)
    rows = _assert_chain(app, _count(app))
    assert sum(r.type == "token.issued" for r in rows) == 64


# -- the writer -------------------------------------------------------------------------------

def test_the_writer_reconnects_to_a_restarted_relay(app, engine, socket_dir):
    path = os.path.join(socket_dir, audit_relay.SOCKET_NAME)
    writer = AuditWriter(engine, relay_socket=path)
    try:
        with relay_thread(engine, path):
            writer.write(_event(1))
        # The relay is gone (its connections closed) and another listens on the same path:
        # the held connection is stale, the next write must not fail on it.
        with relay_thread(engine, path):
            writer.write(_event(2))
            writer.write(_event(3))
    finally:
        writer.close()
    _assert_chain(app, 3)


def test_the_writer_reconnects_after_its_own_relay_thread_was_replaced(app, engine):
    writer = AuditWriter(engine)
    try:
        writer.write(_event(1))  # starts this process's ThreadRelay
        old = writer._own
        old.close()  # closes the writer's connection from the relay's side
        writer._own = audit_relay.ThreadRelay(engine)  # what a restart would give
        writer.write(_event(2))
    finally:
        writer.close()
    _assert_chain(app, 2)


def test_a_relay_that_never_answers_fails_the_write_and_its_late_answer_is_dropped(
        app, engine, socket_dir, monkeypatch):
    # The timeout is set when the connection is made: patch before the first write.
    monkeypatch.setattr(audit_writer, "WAIT_SECONDS", 0.5)
    path = os.path.join(socket_dir, "fake.sock")

    def answer(conn_index: int, frame_index: int):
        if conn_index == 0:
            # Silent for the first event; should the writer send another frame on this
            # connection, the first event's late answer (REFUSED) is waiting for it.
            return None if frame_index == 0 else REFUSED
        return COMMITTED

    fake = FakeRelay(path, answer)
    writer = AuditWriter(engine, relay_socket=path)
    try:
        started = time.monotonic()
        with pytest.raises(AuditUnavailable):
            writer.write(_event(1))
        assert 0.4 < time.monotonic() - started < 5
        writer.write(_event(2))  # a new connection, its own answer (COMMITTED)
        assert [i for i, _ in fake.frames] == [0, 1]
        assert [json.loads(p)["details"] for _, p in fake.frames] == [
            _event(1)["details"], _event(2)["details"]]
        # The timed-out connection was closed by the writer, not left for a later request.
        assert wait_for(lambda: 0 in fake.closed_by_client)
    finally:
        writer.close()
        fake.close()
    assert _count(app) == 0  # the fake wrote nothing; nothing else did either


def test_a_relay_closing_without_an_answer_fails_that_write_only(engine, socket_dir):
    path = os.path.join(socket_dir, "fake.sock")
    fake = FakeRelay(path, lambda conn, frame: "close" if conn == 0 else COMMITTED)
    writer = AuditWriter(engine, relay_socket=path)
    try:
        with pytest.raises(AuditUnavailable):  # whether it committed is unknown: 503
            writer.write(_event(1))
        writer.write(_event(2))
        assert [i for i, _ in fake.frames] == [0, 1]
    finally:
        writer.close()
        fake.close()


def test_an_unreachable_relay_fails_the_write_at_once(engine, socket_dir):
    writer = AuditWriter(engine, relay_socket=os.path.join(socket_dir, "none.sock"))
    try:
        started = time.monotonic()
        with pytest.raises(AuditUnavailable):
            writer.write(_event(1))
        assert time.monotonic() - started < 1
    finally:
        writer.close()


# -- a database that refuses ------------------------------------------------------------------

def test_a_refused_insert_refuses_the_whole_batch_and_later_batches_commit(
        app, engine, relay, backend, monkeypatch):
    batches: list[int] = []
    original = audit.append_sealed
    monkeypatch.setattr(audit, "append_sealed", lambda driver, dialect, events, head:
                        batches.append(len(events)) or original(driver, dialect, events, head))
    with _connect(relay.path) as conn:
        assert _send(conn, _event(1)) == COMMITTED  # the relay has a cached head now
        with refusing_token_events(engine, backend):
            # One batch: events the database would accept alone share the refusal.
            batch = [_event(2, "client.updated"), _event(3), _event(4, "client.updated")]
            with _connect(relay.path) as other:
                assert _send(conn, *batch) == REFUSED * 3
                assert _send(other, _event(5)) == REFUSED
        assert 3 in batches[1:], batches  # the three went as one batch
        assert _count(app) == 1
        assert _send(conn, _event(6), _event(7)) == COMMITTED * 2
        assert _send(conn, _event(8)) == COMMITTED
    _assert_chain(app, 4)  # no sequence number was spent on the refused batches


def test_issuances_are_counted_before_their_answers_and_refused_ones_never(
        app, engine, relay, backend, monkeypatch):
    """A client holding its token must find it in /metrics: the relay counts a committed
    batch before it answers (CI once read /metrics between the answer and the count)."""
    from authserver import metrics

    order: list = []
    monkeypatch.setattr(metrics, "token_issued",
                        lambda grant_type, client_id, count=1: order.append(("counted", count)))
    answer = audit_relay._answer
    monkeypatch.setattr(audit_relay, "_answer",
                        lambda conn, reply: order.append(("answer", reply)) or answer(conn, reply))
    with _connect(relay.path) as conn:
        assert _send(conn, _event(1), _event(2), _event(3, "client.updated")) == COMMITTED * 3
        assert order[0] == ("counted", 2), order  # two issuances, one label set, then answers
        assert order[1:] == [("answer", COMMITTED)] * 3, order
        order.clear()
        with refusing_token_events(engine, backend):
            assert _send(conn, _event(4)) == REFUSED
        assert order == [("answer", REFUSED)], order


def test_a_sealing_backlog_holds_the_head_lock_one_small_batch_at_a_time(app, relay):
    """A backlog of transactional events is sealed Sealer.BATCH per tick, so the relay's
    commits (which need the chain head's row) wait for one small seal, not the backlog."""
    svc = app.extensions["authserver"]
    backlog = audit.Sealer.BATCH * 2 + 17
    with svc.session_factory() as session, session.begin():
        for n in range(backlog):
            audit.record(session, "token.issued", actor="client:relay-test", details={"n": n})
    sealer = audit.Sealer(svc.session_factory)
    assert sealer.seal_now() == audit.Sealer.BATCH  # one tick: one bounded seal
    with _connect(relay.path) as conn:  # the relay commits between the ticks
        assert _send(conn, _event(1)) == COMMITTED
    assert sealer.seal_now() == audit.Sealer.BATCH
    assert sealer.seal_now() == 17
    assert sealer.seal_now() == 0
    _assert_chain(app, backlog + 1)


def test_a_ping_is_answered_and_writes_nothing(app, relay):
    """The readiness check's empty frame: COMMITTED at once, no row, and the connection
    goes on carrying events."""
    before = _count(app)
    with _connect(relay.path) as conn:
        conn.sendall(audit_relay.PING)
        assert recv_exactly(conn, 1) == COMMITTED
        assert _count(app) == before
        assert _send(conn, _event(1)) == COMMITTED
    assert _count(app) == before + 1
    assert audit_relay.answers(relay.path)


def test_a_socket_nobody_serves_does_not_answer(socket_dir):
    """A listening socket whose relay is gone (the supervisor keeps it while it restarts
    one) accepts connections but is not ready."""
    path = os.path.join(socket_dir, "audit.sock")
    with audit_relay.listen(path):
        started = time.monotonic()
        assert not audit_relay.answers(path, timeout=0.3)
        assert time.monotonic() - started < 2
    assert not audit_relay.answers(path)  # nothing listens at all


@pytest.mark.settings(audit_relay_socket="/nonexistent/authserver-audit/audit.sock",
                      ratelimit_token="1000/minute")
def test_without_its_relay_an_app_is_unready_and_refuses_tokens(app, client):
    """An app told to use a relay that is not there (`authserver serve` starts a new one when
    it dies: tests/e2e/test_audit_relay_live.py): /readyz answers 503 naming the relay, so a
    balancer takes the instance out, and client-credentials tokens are refused with 503."""
    from tests.support.factories import basic_auth, make_client

    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"] == {"database": "ok", "keys": "ok",
                                          "audit_relay": "unreachable"}
    cc, secret = make_client(app, scope="a", default_scope="a")
    # The first issuance loads the client through Flask (its event commits with that
    # request's transaction); the next ones (the fast path) need the relay and are refused.
    statuses = []
    for _ in range(3):
        response = client.post("/oauth2/token", data={"grant_type": "client_credentials"},
                               headers=basic_auth(cc["client_id"], secret))
        statuses.append(response.status_code)
    assert statuses == [200, 503, 503], statuses
    assert response.get_json()["error"] == "temporarily_unavailable"
