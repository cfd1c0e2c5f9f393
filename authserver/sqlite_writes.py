"""SQLite's writers take turns in a queue the kernel keeps, not in SQLite's busy handler.

SQLite lets one connection write at a time (``BEGIN IMMEDIATE``, db.py); the others retry
under ``busy_timeout``, and its default busy handler sleeps between tries, longer the longer
it has waited (1, 2, 5 … 50, 100 ms). A writer that has waited a while sleeps through many
releases while newcomers take the lock: measured under 16 and 64 connections (2 workers x
4 threads, granian), code exchanges and refreshes had a p99 of 1.2-2.3 s with the CPU half
idle.

Here each connection the engine makes (``connect_args["factory"]``) queues before it begins:

1. on this process's lock for the database (threads; an ordinary lock, woken at once);
2. on an exclusive ``flock`` of ``<database>-write.lock`` (processes: workers, the audit
   relay, the CLI; the kernel wakes a waiter the moment the holder lets go, and drops the
   lock of a process that dies). A blocking ``flock`` cannot be given up, so when the lock
   is taken the process's waiter thread blocks on it for the caller, who waits at most
   what is left of ``LOCK_TIMEOUT`` (30 s, as SQLite's busy timeout) and then fails with
   SQLite's "database is locked"; the waiter lets go of what it took for a caller who left.
   The first writer creates the file, mode 0600; a process that cannot open it (made by
   another user) or whose file system refuses ``flock`` writes without the queue and logs
   so once.

Both are let go when the transaction ends: commit, rollback (also the pool's reset when a
connection comes back) or close. Measured (alternating pairs): p99 140-400 ms instead of
1.2-1.4 s, 5-30 % more code exchanges and refreshes per second. A writer that does not queue
(the sqlite3 shell, a process of an older version) is still kept out by SQLite's own lock;
the queue only decides who asks next.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time

log = logging.getLogger("authserver.db")

LOCK_TIMEOUT = 30.0  # seconds a writer waits for its turn in all; as db.py's busy_timeout
LOCK_SUFFIX = "-write.lock"


def lock_path(database: str) -> str | None:
    """The lock file of a database file; None for memory and URI databases (not queued)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return os.path.abspath(database) + LOCK_SUFFIX


_open_files: set[int] = set()  # this process's lock file descriptors


def _open(path: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    _open_files.add(fd)
    return fd


def _close(fd: int) -> None:
    _open_files.discard(fd)
    os.close(fd)


def _locked_out() -> sqlite3.OperationalError:
    return sqlite3.OperationalError("database is locked (write queue)")


class _Request:
    """A caller's wait for the file lock, taken by the waiter thread on a descriptor of its
    own (a dup: the same lock, safe from the caller closing its descriptor)."""

    def __init__(self, fd: int):
        self.fd = os.dup(fd)
        self.error: OSError | None = None
        self._done = threading.Event()
        self._guard = threading.Lock()
        self.abandoned = False

    def outcome(self, timeout: float) -> bool:
        """True once the lock is ours; False if the caller leaves first (``abandoned``: the
        waiter then lets it go, and the caller's process turn with it)."""
        try:
            self._done.wait(timeout)
        finally:
            with self._guard:
                if not self._done.is_set():
                    self.abandoned = True
        if self.abandoned:
            return False
        if self.error is not None:
            raise self.error
        return True

    def settle(self, error: OSError | None) -> bool:
        """The waiter's side: whether the caller has left."""
        with self._guard:
            self.error = error
            if self.abandoned:
                return True
            self._done.set()
            return False


class _Queue:
    """One database's queue in this process: the threads' turn, the waiter thread."""

    def __init__(self, path: str):
        self.path = path
        self.turn = threading.Lock()
        self.off = False  # the lock file is unusable here: SQLite's own lock alone
        self._requests: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._waiter: threading.Thread | None = None

    def switch_off(self, exc: OSError) -> None:
        if not self.off:
            self.off = True
            log.warning("SQLite write queue off: %s unusable (%s); writers wait on SQLite's "
                        "busy handler", self.path, exc.strerror or type(exc).__name__)

    def take_file(self, fd: int, timeout: float) -> bool:
        """Take the file lock within ``timeout``, the caller holding ``turn``. True: both
        are the caller's. False or an exception: the turn is let go (at once, or by the
        waiter once it has taken and dropped the lock for a caller who left)."""
        request = None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
            request = _Request(fd)
            self._start_waiter()
            self._requests.put(request)
            return request.outcome(timeout)
        except BaseException:  # the waiter's OSError (it took nothing), or ours
            if request is None or not request.abandoned:
                self.turn.release()
            raise

    def _start_waiter(self) -> None:
        if self._waiter is None:
            self._waiter = threading.Thread(target=self._wait_loop, daemon=True,
                                            name="sqlite-write-queue")
            self._waiter.start()

    def _wait_loop(self) -> None:
        while True:
            request = self._requests.get()
            try:
                fcntl.flock(request.fd, fcntl.LOCK_EX)
                error = None
            except OSError as exc:
                error = exc
            try:
                if request.settle(error):  # the caller left: give back what it would have had
                    if error is None:
                        fcntl.flock(request.fd, fcntl.LOCK_UN)
                    self.turn.release()
            finally:
                os.close(request.fd)


_queues: dict[str, _Queue] = {}
_queues_guard = threading.Lock()


def _queue(path: str) -> _Queue:
    with _queues_guard:
        found = _queues.get(path)
        if found is None:
            found = _queues[path] = _Queue(path)
        return found


def _after_fork_in_child() -> None:
    # The parent's turns and waiter threads are not the child's (a turn held by a parent's
    # thread at fork time would stay held here), nor are its lock files' descriptors: a
    # copy shares the parent's lock, and kept open here it would outlive the parent's hold.
    global _queues_guard
    _queues.clear()
    _queues_guard = threading.Lock()
    for fd in _open_files:
        with contextlib.suppress(OSError):
            os.close(fd)
    _open_files.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


class WriteQueuedConnection(sqlite3.Connection):
    """A sqlite3 connection whose ``begin_immediate`` waits its turn (module docstring)."""

    def __init__(self, database, *args, **kwargs):
        super().__init__(database, *args, **kwargs)
        self._lock_path = lock_path(os.fsdecode(database))
        self._lock_fd: int | None = None
        self._lock_pid = 0
        self._held: threading.Lock | None = None  # our process's turn, while we hold both

    def begin_immediate(self) -> None:
        queued = _queue(self._lock_path) if self._lock_path else None
        if queued is not None and self._take_turn(queued):
            self._held = queued.turn
        try:
            self.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._let_go()
            raise

    def _take_turn(self, queued: _Queue) -> bool:
        """Wait for our turn (both locks) within LOCK_TIMEOUT; False when this process
        writes without the queue (SQLite's own lock alone)."""
        if queued.off:
            return False
        deadline = time.monotonic() + LOCK_TIMEOUT
        if not queued.turn.acquire(timeout=LOCK_TIMEOUT):
            raise _locked_out()
        try:
            fd = self._file()
        except OSError as exc:  # e.g. another user's file
            queued.turn.release()
            queued.switch_off(exc)
            return False
        try:
            if queued.take_file(fd, max(0.0, deadline - time.monotonic())):
                return True
        except OSError as exc:  # a file system without flock (some network mounts)
            queued.switch_off(exc)
            return False
        raise _locked_out()

    def _file(self) -> int:
        """This process's descriptor of the lock file (one inherited over fork would share
        the parent's lock instead of queueing against it)."""
        if self._lock_fd is None or self._lock_pid != os.getpid():
            self._lock_fd = _open(self._lock_path)
            self._lock_pid = os.getpid()
        return self._lock_fd

    def _let_go(self) -> None:
        """Leave the queue, unless a transaction is still open (a failed commit: the
        rollback that follows lets go)."""
        if self._held is None or (not self._closed() and self.in_transaction):
            return
        turn, self._held = self._held, None
        try:
            if self._lock_pid == os.getpid():  # never through a descriptor of the parent's
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        finally:
            turn.release()

    def _closed(self) -> bool:
        try:
            self.total_changes  # noqa: B018 - raises ProgrammingError once closed
        except sqlite3.ProgrammingError:
            return True
        return False

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._let_go()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._let_go()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._let_go()
            self._close_file()

    def __del__(self) -> None:
        # Dropped without close() (a leaked connection): its turn must not outlive it.
        held, self._held = getattr(self, "_held", None), None
        self._close_file()  # closing the descriptor drops its flock
        if held is not None:
            with contextlib.suppress(RuntimeError):  # a turn of the parent's, after a fork
                held.release()

    def _close_file(self) -> None:
        fd, self._lock_fd = getattr(self, "_lock_fd", None), None
        if fd is not None and self._lock_pid == os.getpid():
            _close(fd)


def begin_immediate(dbapi_connection) -> None:
    """Begin a write transaction on a sqlite3 connection, in the queue when it has one."""
    if isinstance(dbapi_connection, WriteQueuedConnection):
        dbapi_connection.begin_immediate()
    else:
        dbapi_connection.execute("BEGIN IMMEDIATE")
