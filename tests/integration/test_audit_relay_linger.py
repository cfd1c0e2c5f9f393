"""The audit relay's group commit (audit_relay.Relay._gather, AUTHSERVER_AUDIT_GROUP_COMMIT_
WAIT_US) against the real databases: a relay on a thread, raw connections to its socket.

Covered:
- events arriving alone are written at once, however long the wait is set;
- once events arrive together, the next batch waits for more and goes as one batch as soon as
  it holds half as many events as there are connected clients, long before the wait is over;
- the wait is bounded: a batch that does not fill is written when the wait is over, and the
  next lone event (the last batch held one) goes at once again;
- a relay told to stop while a batch waits writes and answers it at once;
- every event waited for is committed, sealed, and the chain verifies.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import threading
import time

import pytest
from sqlalchemy import func, select

from authserver import audit, audit_relay
from authserver.models import AuditEvent

COMMITTED = audit_relay.COMMITTED


def _event(n: int) -> dict:
    return audit.event_row("token.issued", actor="client:group-commit", client_id="gc",
                           details={"grant_type": "client_credentials", "n": n})


@pytest.fixture
def engine(app):
    return app.extensions["authserver"].engine


@pytest.fixture
def batches(monkeypatch) -> list[int]:
    """The size of every batch the relay writes."""
    sizes: list[int] = []
    original = audit.append_sealed
    monkeypatch.setattr(audit, "append_sealed", lambda driver, dialect, events, head:
                        sizes.append(len(events)) or original(driver, dialect, events, head))
    return sizes


@contextlib.contextmanager
def _relay(engine, linger: float):
    path = os.path.join(tempfile.mkdtemp(prefix="gc-test-"), "audit.sock")
    relay = audit_relay.Relay(engine, path, linger=linger)
    thread = threading.Thread(target=relay.serve, name="test-relay", daemon=True)
    thread.start()
    try:
        yield path, relay
    finally:
        relay.stop()
        thread.join(timeout=10)
        assert not thread.is_alive()
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)


def _connections(path: str, n: int) -> list[socket.socket]:
    conns = []
    for _ in range(n):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(20)  # a relay that stops answering fails the test, not hangs it
        conn.connect(path)
        conns.append(conn)
    return conns


def _send(conn: socket.socket, *events: dict) -> None:
    conn.sendall(b"".join(audit_relay.frame(ev) for ev in events))


def _answers(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _timed(conn: socket.socket, *events: dict) -> float:
    """Send the events at once and wait for their answers (all COMMITTED); the seconds taken."""
    started = time.monotonic()
    _send(conn, *events)
    assert _answers(conn, len(events)) == COMMITTED * len(events)
    return time.monotonic() - started


def _together(conn: socket.socket, batches: list[int]) -> None:
    """Two events in one batch: the relay now takes events as arriving together."""
    _timed(conn, _event(0), _event(1))
    assert batches[-1] == 2, batches


def _assert_chain(app, expected: int) -> None:
    with app.extensions["authserver"].session_factory() as session:
        rows = session.scalars(select(AuditEvent.seq)).all()
        assert sorted(rows) == list(range(1, expected + 1))
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == expected
        assert audit.verify(session) is None


def test_events_arriving_alone_are_written_at_once(app, engine, batches):
    with _relay(engine, linger=10.0) as (path, _), contextlib.ExitStack() as stack:
        conns = [stack.enter_context(c) for c in _connections(path, 8)]
        for n in range(5):
            assert _timed(conns[n % 2], _event(n)) < 2.0  # not the 10 s wait
    assert batches == [1] * 5
    _assert_chain(app, 5)


def test_events_arriving_together_wait_and_go_as_one_batch_once_it_is_full(
        app, engine, batches):
    # 8 connected clients: a waiting batch goes once it holds 4 events.
    with _relay(engine, linger=10.0) as (path, _), contextlib.ExitStack() as stack:
        conns = [stack.enter_context(c) for c in _connections(path, 8)]
        _together(conns[0], batches)
        started = time.monotonic()
        for n, conn in enumerate(conns[1:5]):
            _send(conn, _event(10 + n))
            time.sleep(0.05)  # one by one, as requests finish
        for conn in conns[1:5]:
            assert _answers(conn, 1) == COMMITTED
        waited = time.monotonic() - started
    assert batches == [2, 4], batches  # without the wait: [2, 1, 1, 1, 1]
    assert waited < 5.0  # it went when full, not after the 10 s
    _assert_chain(app, 6)


def test_the_wait_is_bounded_and_a_lone_event_after_it_goes_at_once(app, engine, batches):
    with _relay(engine, linger=0.4) as (path, _), contextlib.ExitStack() as stack:
        conns = [stack.enter_context(c) for c in _connections(path, 8)]
        _together(conns[0], batches)
        waited = _timed(conns[1], _event(2))  # nobody else comes: written after the wait
        assert 0.35 <= waited < 5.0, waited
        assert _timed(conns[2], _event(3)) < 0.35  # the last batch held one: no wait
    assert batches == [2, 1, 1], batches
    _assert_chain(app, 4)


def test_a_stopping_relay_writes_a_waiting_batch_at_once(app, engine, batches):
    with _relay(engine, linger=30.0) as (path, relay), contextlib.ExitStack() as stack:
        conns = [stack.enter_context(c) for c in _connections(path, 8)]
        _together(conns[0], batches)
        _send(conns[1], _event(2))
        time.sleep(0.2)  # it waits for company
        started = time.monotonic()
        relay.stop()
        assert _answers(conns[1], 1) == COMMITTED
        assert time.monotonic() - started < 5.0
    assert batches == [2, 1], batches
    _assert_chain(app, 3)
