"""SQLite writers queue for their turn (sqlite_writes.py): the file lock is held exactly while
a write transaction is open, however it ends; a waiter goes the moment the holder lets go
(SQLite's busy handler would be asleep then); a dead holder frees the queue; a process's
threads give up after the timeout with SQLite's own error. Real SQLite files throughout."""

from __future__ import annotations

import errno
import fcntl
import gc
import os
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from authserver import audit, db, migrate, sqlite_writes


@pytest.fixture
def engine(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'queue.db'}")
    migrate.upgrade(engine)  # the audit tables, for the relay's writes
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    yield engine
    engine.dispose()


def _lock_file(engine) -> Path:
    return Path(engine.url.database).resolve().with_name("queue.db" + sqlite_writes.LOCK_SUFFIX)


def _taken(path: Path) -> bool:
    """Whether someone holds the queue's file lock (probed on a descriptor of our own)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_the_lock_is_held_exactly_while_a_write_transaction_is_open(engine):
    lock = _lock_file(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        assert _taken(lock)
    assert not _taken(lock)  # committed

    with pytest.raises(RuntimeError), engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (2)"))
        raise RuntimeError("rolled back")
    assert not _taken(lock)

    conn = engine.connect()
    conn.execute(text("INSERT INTO t VALUES (3)"))
    assert _taken(lock)
    conn.close()  # back to the pool without a commit: the pool's reset rolls back
    assert not _taken(lock)

    conn = engine.connect()
    conn.execute(text("INSERT INTO t VALUES (4)"))
    conn.invalidate()  # the DB-API connection closed
    assert not _taken(lock)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM t")).scalars().all() == [1]


def test_the_audit_relays_own_writes_queue_too(engine):
    lock = _lock_file(engine)
    with db.driver_connection(engine) as driver:
        holder = engine.raw_connection()
        sqlite_writes.begin_immediate(holder.driver_connection)
        done = threading.Event()

        def append():
            with db.driver_connection(engine) as other:
                audit.append_sealed(other, engine.dialect, [audit.event_row(
                    "token.issued", actor="client:c", client_id="c")], None)
            done.set()

        threading.Thread(target=append, daemon=True).start()
        assert not done.wait(0.3)  # waiting its turn
        holder.rollback()
        assert done.wait(5)
        holder.close()
        assert not _taken(lock)
        assert driver.execute("SELECT count(*) FROM audit_events").fetchone()[0] == 1


def _hold_in_child(path: str, seconds: float) -> subprocess.Popen:
    """A process that takes the queue's file lock, says so, holds it ``seconds``, lets go
    and prints when (CLOCK_MONOTONIC: one clock for every process), then lingers."""
    code = ("import fcntl, os, time\n"
            f"fd = os.open({path!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            f"time.sleep({seconds})\n"
            "released = time.monotonic()\n"
            "fcntl.flock(fd, fcntl.LOCK_UN)\n"
            "print(released, flush=True)\n"
            "time.sleep(1)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "held\n"
    return child


def _end(child: subprocess.Popen) -> None:
    child.kill()
    child.wait()
    child.stdout.close()


def test_a_waiter_goes_the_moment_another_process_lets_go(engine):
    # The point of the queue: after waiting a while, SQLite's busy handler sleeps 100 ms
    # between tries, so a waiter would begin long after the release (measured: 30 ms;
    # through the queue: 0.5 ms).
    lock = str(_lock_file(engine))
    late = []
    for _ in range(5):
        child = _hold_in_child(lock, 0.8)
        with engine.begin() as conn:
            began = time.monotonic()
            conn.execute(text("INSERT INTO t VALUES (5)"))
        late.append(began - float(child.stdout.readline()))
        _end(child)
    assert all(d > 0 for d in late), late  # it did wait for the holder
    assert statistics.median(late) < 0.010, late


def test_a_dead_holder_frees_the_queue_at_once(engine):
    lock = str(_lock_file(engine))
    child = _hold_in_child(lock, 60)
    began = []

    def write():
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (6)"))
            began.append(time.monotonic())

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(0.3)
    assert not began  # queued behind the child
    killed = time.monotonic()
    _end(child)
    writer.join(10)
    assert began and began[0] - killed < 1.0


def _write_failure(engine, n: int) -> tuple[Exception | None, float]:
    """Write on a thread of its own; what it raised (None: it wrote) and how long it took."""
    outcome: list = []

    def write():
        started = time.monotonic()
        try:
            with engine.begin() as conn:
                conn.execute(text(f"INSERT INTO t VALUES ({n})"))
            outcome.append((None, time.monotonic() - started))
        except Exception as exc:  # noqa: BLE001 - handed to the test
            outcome.append((exc, time.monotonic() - started))

    writer = threading.Thread(target=write)
    writer.start()
    writer.join(15)
    return outcome[0]


def _is_locked_error(exc) -> bool:
    # SQLAlchemy's error, as SQLite's own lock timeout always was (db.is_transient and the
    # callers that catch SQLAlchemyError rely on it), around SQLite's driver error.
    return (isinstance(exc, OperationalError) and isinstance(exc.orig, sqlite3.OperationalError)
            and "locked" in str(exc.orig))


def test_threads_give_up_after_the_timeout_with_sqlites_error(engine, monkeypatch):
    monkeypatch.setattr(sqlite_writes, "LOCK_TIMEOUT", 0.2)
    holder = engine.connect()
    holder.execute(text("INSERT INTO t VALUES (7)"))
    failed, _ = _write_failure(engine, 8)
    holder.commit()
    holder.close()
    assert _is_locked_error(failed), repr(failed)
    assert db.is_transient(failed)
    with engine.begin() as conn:  # the queue works again
        conn.execute(text("INSERT INTO t VALUES (9)"))
        assert conn.execute(text("SELECT n FROM t ORDER BY n")).scalars().all() == [7, 9]


def test_a_wait_on_another_process_is_bounded_too(engine, monkeypatch):
    # A blocking flock cannot be given up: the process's waiter thread blocks on it, the
    # writer leaves after the timeout, and the waiter gives back what it took later.
    monkeypatch.setattr(sqlite_writes, "LOCK_TIMEOUT", 0.5)
    child = _hold_in_child(str(_lock_file(engine)), 2.0)
    failed, took = _write_failure(engine, 15)
    assert _is_locked_error(failed), repr(failed)
    assert 0.4 < took < 1.5, took
    float(child.stdout.readline())  # the child let go
    failed, took = _write_failure(engine, 16)
    assert failed is None and took < 1.0, (failed, took)
    _end(child)
    assert not _taken(_lock_file(engine))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM t")).scalars().all() == [16]


def test_a_file_system_without_flock_leaves_sqlites_own_lock(engine, monkeypatch, caplog):
    def refuse(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(sqlite_writes.fcntl, "flock", refuse)
    for n in (17, 18):
        failed, _ = _write_failure(engine, n)
        assert failed is None, repr(failed)
    warnings = [r for r in caplog.records if "write queue off" in r.getMessage()]
    assert len(warnings) == 1 and "No locks available" in warnings[0].getMessage()


def test_a_failed_commit_then_close_gives_the_turn_back(engine):
    # SQLAlchemy skips its rollback on return after a failed commit; the pool's reset hook
    # (db._sqlite_end_transaction) ends the transaction, and with it the turn.
    lock = _lock_file(engine)
    conn = engine.connect()
    conn.execute(text("INSERT INTO t VALUES (19)"))
    driver = conn.connection.driver_connection
    driver.commit = lambda: (_ for _ in ()).throw(sqlite3.OperationalError("disk I/O error"))
    with pytest.raises(OperationalError):
        conn.commit()
    del driver.commit
    assert _taken(lock)
    conn.close()
    assert not _taken(lock)
    failed, took = _write_failure(engine, 20)
    assert failed is None and took < 1.0, (failed, took)


def test_a_waiter_starts_right_after_the_release_not_after_a_backoff(engine):
    # Threads of one process: the holder lets go after the waiter has waited long enough for
    # SQLite's busy handler to be sleeping 100 ms between tries; the waiter must begin within
    # a few ms of the release (medians over 5 tries; SQLite's handler: 30 ms here).
    late = []
    began: list[float] = []

    def write():
        with engine.begin() as conn:
            began.append(time.monotonic())
            conn.execute(text("INSERT INTO t VALUES (11)"))

    for _ in range(5):
        holder = engine.connect()
        holder.execute(text("INSERT INTO t VALUES (10)"))
        began.clear()
        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(0.8)
        released = time.monotonic()
        holder.commit()
        holder.close()
        writer.join(10)
        late.append(began[0] - released)
    assert statistics.median(late) < 0.010, late


def test_a_connection_dropped_without_close_does_not_keep_its_turn(engine):
    lock = _lock_file(engine)
    leaked = sqlite_writes.WriteQueuedConnection(engine.url.database)
    leaked.begin_immediate()
    assert _taken(lock)
    del leaked
    gc.collect()
    assert not _taken(lock)
    with engine.begin() as conn:  # this process's turn is free again (else: 30 s, then fail)
        conn.execute(text("INSERT INTO t VALUES (14)"))


def test_a_lock_file_it_cannot_open_leaves_sqlites_own_lock(engine, monkeypatch, caplog):
    # e.g. created by another user: writes go on, unqueued, and the operator is told once.
    lock = _lock_file(engine)

    def refuse(path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(sqlite_writes, "_open", refuse)
    engine.dispose()  # new connections: none holds a descriptor yet
    for n in (12, 13):
        with engine.begin() as conn:
            conn.execute(text(f"INSERT INTO t VALUES ({n})"))
            assert not _taken(lock)
    warnings = [r for r in caplog.records if "write queue off" in r.getMessage()]
    assert len(warnings) == 1 and "Permission denied" in warnings[0].getMessage()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM t ORDER BY n")).scalars().all() == [12, 13]


def test_a_forked_child_does_not_keep_its_parents_turn(engine):
    # The child of a process holding the turn inherits the lock file's descriptor; the
    # child must close it, or the lock would outlive the parent (killed here).
    holder = subprocess.Popen([sys.executable, "-c", (
        "import os, sys, time\n"
        "from authserver import sqlite_writes\n"
        f"conn = sqlite_writes.WriteQueuedConnection({engine.url.database!r})\n"
        "conn.begin_immediate()\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        "    time.sleep(30)\n"
        "    os._exit(0)\n"
        "print(child, flush=True)\n"
        "time.sleep(30)\n")], stdout=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[2])
    child = int(holder.stdout.readline())
    try:
        assert _taken(_lock_file(engine))
        _end(holder)
        deadline = time.monotonic() + 5
        while _taken(_lock_file(engine)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _taken(_lock_file(engine))
        failed, took = _write_failure(engine, 21)
        assert failed is None and took < 1.0, (failed, took)
    finally:
        os.kill(child, 9)
