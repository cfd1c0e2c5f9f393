"""The audit relay: one process per server commits the audit events that accompany no other
write (client-credentials issuances) for all of its workers, sealing each into the hash
chain as it inserts it.

A request hands its event over a Unix socket and waits for the answer; the relay commits
everything that arrived meanwhile in one statement (group commit across all workers) and
answers each request: nothing is answered before its event is durable, and a refused
commit refuses every request of the batch (503 upstream). A batch is written once, sealed
(``audit.append_sealed``): no second write by the sealer.

Group commit with a bounded wait (``AUTHSERVER_AUDIT_GROUP_COMMIT_WAIT_US``, 2 ms), while
the workers are busy: once batches hold more than one event, and a worker sending lately
reported a load of BUSY_LOAD or more (web/in_flight.py: all its request threads, or four, in
requests; requests are queued in front of it, and its other threads use the CPU while some
wait), a batch waits up to that long for more events before it is written, until it holds
half as many as there are active request threads (connections that sent an event lately; at
most LINGER_BATCH). Measured (README, Performance): without it batches held ~2 events at
full load and the relay and PostgreSQL spent ~280 µs of CPU per token; with it ~8–10 events
and ~110 µs. With few requests in progress a wait only adds latency (measured: 4
connections, 26 % fewer tokens/s), so then, and for events arriving alone, nothing waits.

Why a process of its own (measured, README Performance): the same work as a writer thread in
each worker cost ~135 µs of CPU per token in that thread plus the GIL hand-offs it forced on
the request threads, and batches stayed at ~2 events per worker; the sealer's update of every
event was half of PostgreSQL's work per token. Here one thread, no GIL shared with requests,
batches over all workers.

Protocol, one connection per request thread: a frame is a 4-byte big-endian header (its top
byte the sender's load, ``InFlight.load``, at most 255; the other three the length of what
follows) and the event as JSON (``frame``); the answer is one byte, ``COMMITTED`` or
``REFUSED``. The socket lives in a directory only the server's user can enter (``authserver
serve`` creates it).

``authserver serve`` starts ``python -m authserver.audit_relay SOCKET`` (a supervisor that
restarts the relay if it dies) before its workers and stops it after them by closing its
stdin; the relay then answers until the workers' connections are closed and exits. It
ignores SIGTERM and SIGINT (a signal to the whole process group must not take it away from
workers still finishing their requests) and goes when the server goes, however it ends.
Without a relay socket (tests, the CLI, a bare ``flask run``) each process runs the same
relay on a thread (``audit_writer.AuditWriter``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime

from sqlalchemy.engine import Engine

from . import audit, db

log = logging.getLogger("authserver.audit")

COMMITTED, REFUSED = b"\x00", b"\x01"
MAX_FRAME = 1024 * 1024  # events are a few hundred bytes; a larger frame closes the connection
MAX_BATCH = audit.MAX_ROWS_PER_INSERT  # one statement
LINGER_BATCH = 16  # a gathering batch is written once it holds this many events
ACTIVE_WAITS = 4  # a connection is active while its last event is this many waits old
BUSY_LOAD = 4  # the load of a busy worker (InFlight.load: all its threads, or four, in requests)
DRAIN_SECONDS = 30.0  # once told to stop, the longest the relay waits for workers to go
SOCKET_NAME = "audit.sock"
_FIELDS = ("time", "type", "outcome", "actor", "client_id", "ip", "request_id", "details")


def frame(event: dict, load: int = 0) -> bytes:
    """An ``audit.event_row`` as one frame, with the sender's ``load`` (web/in_flight.py)."""
    payload = json.dumps({**event, "time": event["time"].isoformat()},
                         separators=(",", ":")).encode()
    return (min(load, 255) << 24 | len(payload)).to_bytes(4, "big") + payload


def _event(payload: bytes) -> dict:
    """The event of a frame; ValueError unless it is exactly an ``audit.event_row``."""
    ev = json.loads(payload)
    if not isinstance(ev, dict) or set(ev) != set(_FIELDS):
        raise ValueError("not an audit event")
    for name in _FIELDS:
        value = ev[name]
        if not (isinstance(value, str) or value is None and name in ("client_id", "ip",
                                                                      "request_id")):
            raise ValueError(f"bad audit event field {name}")
    ev["time"] = datetime.fromisoformat(ev["time"])
    if ev["time"].utcoffset() is None:
        raise ValueError("audit event time without a zone")
    return ev


class Relay:
    """The relay's loop on one thread: accept, read frames, commit what arrived, answer."""

    def __init__(self, engine: Engine, listener: str | socket.socket, stop_when_closed=None,
                 linger: float = 0.0):
        """``listener``: a path to listen on, or a listening socket (the supervisor's);
        ``linger``: the group commit's longest wait, in seconds (0: none)."""
        self._engine = engine
        self._linger = linger
        self._dialect = engine.dialect
        self._listener = listen(listener) if isinstance(listener, str) else listener
        self._listener.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        if stop_when_closed is not None:  # the relay process's stdin: EOF means drain
            self._selector.register(stop_when_closed, selectors.EVENT_READ, "parent")
        self._batch: list[tuple[socket.socket, dict]] = []
        self._together = False  # the last batch held more than one event: wait for more
        self._sent: dict[socket.socket, float] = {}  # each connection's last event (monotonic)
        self._busy_until = 0.0  # until then a busy worker sent lately (monotonic)
        self._head: audit.Head | None = None  # the chain head this relay wrote last
        self._clients = 0
        self._stop = False
        self._drain_until: float | None = None

    # -- control (from any thread) --

    def stop(self) -> None:
        """Stop now (in-process relays, when their app closes)."""
        self._stop = True
        self._wake()

    def drain(self) -> None:
        """Stop once every client has disconnected, or after DRAIN_SECONDS (the server has
        stopped its workers, or died)."""
        if self._drain_until is None:
            self._drain_until = time.monotonic() + DRAIN_SECONDS
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    # -- the loop --

    def serve(self) -> None:
        try:
            while not self._stop:
                if self._drain_until is not None and (
                        self._clients == 0 or time.monotonic() > self._drain_until):
                    break
                try:
                    self._poll(timeout=1.0)
                    if self._batch:
                        self._gather()
                        self._commit()
                except Exception as exc:  # noqa: BLE001 - a relay that stops refuses every token
                    log.error("audit relay error (%s)", type(exc).__name__)
                    time.sleep(0.1)
        finally:
            self._close()

    def _poll(self, timeout: float) -> None:
        for key, _ in self._selector.select(timeout):
            if key.data == "accept":
                self._accept()
            elif key.data == "wake":
                with contextlib.suppress(OSError):
                    self._wake_r.recv(4096)
            elif key.data == "parent":
                if not os.read(key.fd, 4096):
                    self._selector.unregister(key.fileobj)
                    self.drain()
            else:
                self._read(key.fileobj, key.data)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            conn.setblocking(False)
            self._selector.register(conn, selectors.EVENT_READ, bytearray())
            self._clients += 1

    def _read(self, conn: socket.socket, buffer: bytearray) -> None:
        try:
            data = conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._disconnect(conn)
            return
        buffer += data
        while len(buffer) >= 4:
            header = int.from_bytes(buffer[:4], "big")
            load, size = header >> 24, header & 0xFFFFFF
            if size > MAX_FRAME:
                log.warning("audit relay: oversized frame, connection closed")
                self._disconnect(conn)
                return
            if len(buffer) < 4 + size:
                return
            if size == 0:  # a ping (readiness): the loop runs and reads
                del buffer[:4]
                _answer(conn, COMMITTED)
                continue
            payload = bytes(buffer[4:4 + size])
            del buffer[:4 + size]
            try:
                self._batch.append((conn, _event(payload)))
                now = self._sent[conn] = time.monotonic()
                if load >= BUSY_LOAD:
                    self._busy_until = now + ACTIVE_WAITS * self._linger
            except (ValueError, RecursionError):  # never written: the sender gets REFUSED
                log.warning("audit relay: malformed event refused")
                _answer(conn, REFUSED)

    def _gather(self) -> None:
        """Group commit: while events arrive together, the batch waits up to ``linger`` until
        it holds half as many events as there are active request threads (more seldom come
        together: the others are in the middle of their requests; at most LINGER_BATCH).
        Only while the workers are busy (module doc): events arriving alone (the last batch
        held one), or while no busy worker sent lately, are written at once."""
        now = time.monotonic()
        if not (self._together and self._linger and now < self._busy_until):
            return
        since = now - ACTIVE_WAITS * self._linger
        want = min(LINGER_BATCH, sum(1 for t in self._sent.values() if t >= since) // 2)
        deadline = now + self._linger
        while len(self._batch) < want and not self._stop:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._poll(timeout=left)

    def _disconnect(self, conn: socket.socket) -> None:
        # Its events still in the batch are committed; their answers go nowhere.
        self._selector.unregister(conn)
        conn.close()
        self._sent.pop(conn, None)
        self._clients -= 1

    def _take(self) -> list[tuple[socket.socket, dict]]:
        batch, self._batch = self._batch[:MAX_BATCH], self._batch[MAX_BATCH:]
        return batch

    def _commit(self) -> None:
        """Commit batches while they keep coming, on one pooled connection (no checkout per
        batch; it goes back to the pool, to be pinged if idle, before the last answers)."""
        done: list = []  # committed, not answered yet
        batch = self._take()
        try:
            with db.driver_connection(self._engine) as driver:
                while batch:
                    self._head = audit.append_sealed(driver, self._dialect,
                                                     [ev for _, ev in batch], self._head)
                    self._together = len(batch) > 1
                    done, batch = batch, []
                    self._poll(timeout=0)  # what arrived meanwhile is the next batch
                    if self._batch:  # answered before the next batch gathers
                        _answer_all(done, COMMITTED)
                        done = []
                        self._gather()
                        batch = self._take()
        except Exception as exc:  # noqa: BLE001 - handed to every waiting request
            self._head = None  # re-read under the head's lock next time
            log.error("audit write failed (%s)", type(exc).__name__)
            _answer_all(batch, REFUSED)
        _answer_all(done, COMMITTED)

    def _close(self) -> None:
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()
        self._selector.close()
        self._wake_w.close()


def _answer(conn: socket.socket, answer: bytes) -> None:
    try:
        conn.send(answer)  # one byte to a client that waits for it: never blocks
    except OSError:
        pass  # the client is gone; it gets no answer either way


def _answer_all(batch: list, answer: bytes) -> None:
    events = [ev for _, ev in batch] if answer == COMMITTED else []
    try:  # counted before the answers: a client holding its token finds it in /metrics
        audit.count_issued(events)
    except Exception as exc:  # noqa: BLE001 - the events are durable; say so and go on
        log.error("audit events committed, not counted (%s)", type(exc).__name__)
    for conn, _ in batch:
        _answer(conn, answer)
    try:  # log lines after the answers: requests do not wait for them
        audit.log_lines(events)
    except Exception as exc:  # noqa: BLE001
        log.error("audit events committed, their log lines failed (%s)",
                  type(exc).__name__)


# -- a relay on a thread of this process (no `authserver serve`) ------------------------------

class ThreadRelay:
    """The relay on a daemon thread, its socket in a private temporary directory."""

    def __init__(self, engine: Engine, linger: float = 0.0):
        self.path = os.path.join(private_dir(), SOCKET_NAME)
        self._relay = Relay(engine, self.path, linger=linger)
        self._thread = threading.Thread(target=self._relay.serve, name="audit-relay",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._relay.stop()
        self._thread.join(timeout=30)
        _remove(self.path)


# -- the relay process of `authserver serve` ---------------------------------------------------
#
# Lifetime: each process holds the write end of a pipe on its child's stdin. The server
# closes it in on_exit, after its workers are gone (or the kernel does, when the server dies):
# the supervisor then closes its child's, and the relay drains and exits. Signals are ignored:
# a SIGTERM or Ctrl-C sent to the whole process group must not take the relay away while the
# workers are still finishing their requests (their events would be refused).

class RelayProcess:
    """Started by ``authserver serve`` before its workers: a private directory, the socket's
    path in AUTHSERVER_AUDIT_RELAY_SOCKET for the workers, the supervisor process, and a
    thread that starts the supervisor again if it dies (killed alone, its relay would drain
    and exit with nothing left to restart either: every client-credentials token refused
    until the server restarts)."""

    ENV = "AUTHSERVER_AUDIT_RELAY_SOCKET"
    RESTART_DELAY = 0.5  # seconds between a supervisor's death and its successor

    def __init__(self, timeout: float = 30.0):
        self.path = os.path.join(private_dir(), SOCKET_NAME)
        self._timeout = timeout
        self._lock = threading.Lock()  # a restart and stop() one at a time
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe()  # stop() wakes the watcher
        self._process = self._start()
        os.environ[self.ENV] = self.path
        threading.Thread(target=self._watch, name="audit-relay-watcher", daemon=True).start()

    def _start(self) -> subprocess.Popen:
        process = _child([self.path])
        deadline = time.monotonic() + self._timeout
        while not answers(self.path, timeout=1.0):
            if process.poll() is not None or time.monotonic() > deadline:
                _stop(process, timeout=5)
                raise RuntimeError("the audit relay did not start (see its log above)")
            time.sleep(0.05)
        return process

    def _watch(self) -> None:
        """Wait for the supervisor's end of its stdin pipe to close (it died: the pipe reports
        an error to the writer) or for stop(); start a new supervisor on the same path. The
        old relay may still drain its workers' connections meanwhile: two writers of the
        chain are safe (audit.append_sealed), and the workers reconnect once it is gone."""
        running = True
        while True:
            if running:
                watched = select.poll()
                watched.register(self._process.stdin, select.POLLERR | select.POLLHUP)
                watched.register(self._wake_r, select.POLLIN)
                watched.poll()
            time.sleep(self.RESTART_DELAY)
            with self._lock:
                if self._stopping:
                    return
                if running:
                    log.error("audit relay supervisor exited (status %s); starting it again",
                              self._process.poll())
                    with contextlib.suppress(OSError):
                        self._process.stdin.close()
                try:
                    self._process = self._start()
                    running = True
                except (OSError, RuntimeError) as exc:  # tried again after the delay
                    log.error("audit relay did not start again (%s)", type(exc).__name__)
                    running = False

    def stop(self, timeout: float = DRAIN_SECONDS + 10) -> None:
        """After the workers: the relay answers what is left, then exits."""
        with self._lock:
            self._stopping = True
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")
            _stop(self._process, timeout)
            _remove(self.path)


def private_dir() -> str:
    """A new directory only this user can enter (mode 0700), short enough for a socket path
    (AF_UNIX paths are limited to 107 bytes; a long TMPDIR falls back to /tmp)."""
    path = tempfile.mkdtemp(prefix="authserver-audit-")
    if len(os.path.join(path, SOCKET_NAME)) > 100:
        os.rmdir(path)
        path = tempfile.mkdtemp(prefix="authserver-audit-", dir="/tmp")
    return path


def _remove(path: str) -> None:
    """The socket and its private directory (private_dir), whatever is left of them."""
    with contextlib.suppress(OSError):
        os.unlink(path)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(path))


def listen(path: str) -> socket.socket:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(256)  # far more than workers x threads: none is refused while we restart
    return listener


def _child(args: list[str], pass_fds=()) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "authserver.audit_relay", *args],
                            stdin=subprocess.PIPE, pass_fds=pass_fds)


def _stop(process: subprocess.Popen, timeout: float) -> None:
    with contextlib.suppress(OSError):
        process.stdin.close()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


PING = (0).to_bytes(4, "big")  # an empty frame: answered COMMITTED at once, writes nothing


def answers(path: str, timeout: float = 2.0) -> bool:
    """Whether a relay on ``path`` answers a ping within ``timeout`` (start-up, the readiness
    check): the supervisor's socket accepts connections even while no relay serves it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        try:
            probe.connect(path)
            probe.sendall(PING)
            return probe.recv(1) == COMMITTED
        except OSError:
            return False


def _process_settings():
    """Settings and logging as the server's; SIGTERM and SIGINT ignored (the pipe decides)."""
    from . import logs
    from .config import Settings

    settings = Settings.from_env()
    logs.configure(settings.log_level, settings.log_format)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    return settings


def _stdin_closed(timeout: float) -> bool:
    """Whether our parent has closed our stdin (or died), waiting up to ``timeout``."""
    readable, _, _ = select.select([sys.stdin.buffer], [], [], timeout)
    return bool(readable) and not os.read(sys.stdin.fileno(), 4096)


def supervise(path: str) -> int:
    """Run the relay in a child process and start it again if it dies, until stdin closes.
    The listening socket is the supervisor's, handed to each child: while a new relay
    starts, workers' connections wait in its backlog instead of being refused, so a relay
    that dies fails only the requests whose events it had taken (tested)."""
    _process_settings()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a previous server's socket
    listener = listen(path)
    fd = listener.fileno()
    while True:
        child = _child(["--serve", str(fd), path], pass_fds=(fd,))
        while child.poll() is None:
            if _stdin_closed(timeout=1.0):
                _stop(child, DRAIN_SECONDS + 5)
                return 0
        log.error("audit relay exited (status %s); starting it again", child.returncode)
        time.sleep(0.5)


def serve(fd: int) -> int:
    """The relay process on the supervisor's listening socket ``fd``: its own engine (one
    connection), logging as the server's; drains and exits once stdin closes."""
    settings = _process_settings()
    engine = db.make_engine(settings.database_url, pool_size=1, max_overflow=1)
    relay = Relay(engine, socket.socket(fileno=fd), stop_when_closed=sys.stdin.buffer,
                  linger=settings.audit_group_commit_wait_us / 1e6)
    try:
        relay.serve()
    finally:
        engine.dispose()
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "--serve" and argv[1].isdigit():
        return serve(int(argv[1]))  # argv[2], the path, names the socket in ps
    if len(argv) == 1:
        return supervise(argv[0])
    print("usage: python -m authserver.audit_relay SOCKET", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
