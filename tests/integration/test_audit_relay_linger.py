"""The audit relay's group commit (audit_relay.Relay._gather, AUTHSERVER_AUDIT_GROUP_COMMIT_
WAIT_US) against the real databases: a relay on a thread, raw connections to its socket,
frames carrying a busy worker's load (audit_relay.BUSY_LOAD) unless a test says otherwise;
and the load a worker reports (web/in_flight.py) through the app.

Covered:
- events arriving alone are written at once, however long the wait is set, and so are those
  of fewer than four active clients (connections that sent an event lately), and those of
  workers that are not busy (fewer requests in progress than BUSY_LOAD);
- once events arrive together, the next batch waits for more and goes as one batch as soon as
  it holds half as many events as there are active clients, long before the wait is over;
- the wait is bounded: a batch that does not fill is written when the wait is over, and the
  next lone event (the last batch held one) goes at once again;
- a relay told to stop while a batch waits writes and answers it at once;
- every event waited for is committed, sealed, and the chain verifies;
- the app reports its requests in progress with each event: 1 for a lone request, 3 for the
  last of three requests in progress together; an app of two request threads reports
  BUSY_LOAD for the last of two (a worker of fewer threads can be busy).
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
from tests.support.oauth import basic, register
from tests.support.relays import FakeRelay, recv_exactly, relay_thread

COMMITTED = audit_relay.COMMITTED
BUSY = audit_relay.BUSY_LOAD


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
    try:
        with relay_thread(engine, path, linger) as relay:
            yield path, relay
    finally:
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)


def _connections(path: str, n: int) -> list[socket.socket]:
    conns = []
    for _ in range(n):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(20)  # a relay that stops answering fails the test, not hangs it
        conn.connect(path)
        conns.append(conn)
    return conns


def _send(conn: socket.socket, *events: dict, load: int = BUSY) -> None:
    conn.sendall(b"".join(audit_relay.frame(ev, load) for ev in events))


def _timed(conn: socket.socket, *events: dict, load: int = BUSY) -> float:
    """Send the events at once and wait for their answers (all COMMITTED); the seconds taken."""
    started = time.monotonic()
    _send(conn, *events, load=load)
    assert recv_exactly(conn, len(events)) == COMMITTED * len(events)
    return time.monotonic() - started


def _together(conns: list[socket.socket], batches: list[int], load: int = BUSY) -> None:
    """Each connection sends an event (alone: written at once), then the first sends two in
    one batch: the relay now takes events as arriving together, from len(conns) active
    clients."""
    for n, conn in enumerate(conns):
        assert _timed(conn, _event(100 + n), load=load) < 2.0
    _timed(conns[0], _event(0), _event(1), load=load)
    assert batches == [1] * len(conns) + [2], batches
    batches.clear()


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


def test_events_of_a_few_active_clients_are_written_at_once(app, engine, batches):
    # 8 connected, 2 of them active: each waits for its own answer, none would come.
    with _relay(engine, linger=10.0) as (path, _), contextlib.ExitStack() as stack:
        conns = [stack.enter_context(c) for c in _connections(path, 8)]
        _together(conns[:2], batches)
        for n in range(3):
            assert _timed(conns[n % 2], _event(n)) < 2.0, n  # not the 10 s wait
    assert batches == [1, 1, 1], batches
    _assert_chain(app, 2 + 2 + 3)


def test_events_of_workers_that_are_not_busy_are_written_at_once(app, engine, batches):
    # 8 active clients, together, but no sender had BUSY_LOAD requests in progress: no
    # request is queued behind them, a wait would only add to their latency.
    with _relay(engine, linger=10.0) as (path, _), contextlib.ExitStack() as stack:
        conns = [stack.enter_context(c) for c in _connections(path, 8)]
        _together(conns, batches, load=BUSY - 1)
        for n in range(3):
            assert _timed(conns[1 + n], _event(n), load=BUSY - 1) < 2.0, n
    assert batches == [1, 1, 1], batches
    _assert_chain(app, 8 + 2 + 3)


def test_events_arriving_together_wait_and_go_as_one_batch_once_it_is_full(
        app, engine, batches):
    # 8 active clients: a waiting batch goes once it holds 4 events.
    with _relay(engine, linger=10.0) as (path, _), contextlib.ExitStack() as stack:
        conns = [stack.enter_context(c) for c in _connections(path, 8)]
        _together(conns, batches)
        started = time.monotonic()
        for n, conn in enumerate(conns[1:5]):
            _send(conn, _event(10 + n))
            time.sleep(0.05)  # one by one, as requests finish
        for conn in conns[1:5]:
            assert recv_exactly(conn, 1) == COMMITTED
        waited = time.monotonic() - started
    assert batches == [4], batches  # without the wait: [1, 1, 1, 1]
    assert waited < 5.0  # it went when full, not after the 10 s
    _assert_chain(app, 8 + 2 + 4)


def test_the_wait_is_bounded_and_a_lone_event_after_it_goes_at_once(app, engine, batches):
    # 4 active clients (for 4 x 0.4 s): a waiting batch would go at 2 events.
    with _relay(engine, linger=0.4) as (path, _), contextlib.ExitStack() as stack:
        conns = [stack.enter_context(c) for c in _connections(path, 8)]
        _together(conns[:4], batches)
        waited = _timed(conns[1], _event(2))  # nobody else comes: written after the wait
        assert 0.35 <= waited < 5.0, waited
        assert _timed(conns[2], _event(3)) < 0.35  # the last batch held one: no wait
    assert batches == [1, 1], batches
    _assert_chain(app, 4 + 2 + 2)


def test_a_stopping_relay_writes_a_waiting_batch_at_once(app, engine, batches):
    with _relay(engine, linger=30.0) as (path, relay), contextlib.ExitStack() as stack:
        conns = [stack.enter_context(c) for c in _connections(path, 8)]
        _together(conns[:4], batches)
        _send(conns[1], _event(2))
        time.sleep(0.2)  # it waits for company
        started = time.monotonic()
        relay.stop()
        assert recv_exactly(conns[1], 1) == COMMITTED
        assert time.monotonic() - started < 5.0
    assert batches == [1], batches
    _assert_chain(app, 4 + 2 + 1)


def test_the_app_reports_its_requests_in_progress_with_each_event(settings):
    loads = _loads_reported(settings, together=3)
    assert loads["lone"] == 1
    assert sorted(loads["together"])[-1] == 3, loads  # the last of three in progress


def test_a_worker_of_two_threads_reports_busy_once_both_are_in_requests(settings):
    """Fewer threads than BUSY_LOAD (`authserver serve --threads 2`): the last of two
    requests in progress reports BUSY_LOAD, so the relay may group its events."""
    loads = _loads_reported(settings.replace(worker_threads=2), together=2)
    assert loads["lone"] == 1  # one thread idle: not busy
    assert sorted(loads["together"])[-1] == BUSY, loads


def _loads_reported(settings, together: int) -> dict[str, list[int] | int]:
    """The loads an app's events carry: a lone request's, then those of ``together``
    requests in progress at once (a capture relay answers once all of them are waiting)."""
    from authserver import create_app

    path = os.path.join(tempfile.mkdtemp(prefix="gc-load-"), "capture.sock")
    hold, waiting, lock = [1], [], threading.Lock()

    def answer(index: int, _frame: int) -> None:
        """COMMITTED once ``hold`` frames are waiting (that many requests in progress)."""
        with lock:
            waiting.append(index)
            if len(waiting) >= hold[0]:
                for i in waiting:
                    relay.send(i, COMMITTED)
                waiting.clear()

    relay = FakeRelay(path, answer)
    app = create_app(settings.replace(audit_relay_socket=path))
    try:
        meta, secret = register(app, scope="a", default_scope="a")
        headers = basic(meta["client_id"], secret)
        data = {"grant_type": "client_credentials"}
        for _ in range(2):  # the first loads the client into the cache (Flask path)
            assert app.test_client().post("/oauth2/token", data=data,
                                          headers=headers).status_code == 200
        lone = relay.loads[-1]
        relay.loads.clear()
        hold[0] = together  # answered once that many requests are in progress together

        def issue():
            assert app.test_client().post("/oauth2/token", data=data,
                                          headers=headers).status_code == 200

        threads = [threading.Thread(target=issue) for _ in range(together)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        assert len(relay.loads) == together
        return {"lone": lone, "together": list(relay.loads)}
    finally:
        app.extensions["authserver"].close()
        relay.close()
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)
