"""The audit relay process of `authserver serve` (audit_relay.RelayProcess), end to end.

Covered:
- the relay (supervisor and its ``--serve`` child) is a child of the server, its socket in a
  directory of mode 0700 owned by the server's user;
- the ``--serve`` process SIGKILLed under load (gunicorn and granian): only the requests in
  flight at the kill fail (503, never 500), later ones wait for the new relay and succeed,
  every 200's token has its ``token.issued`` event in the database, ``authserver audit
  verify`` exits 0;
- SIGTERM to the server under load: in-flight requests are answered 200 and every 200's
  event is durable, the server exits 0, the relay processes and their directory are gone;
- SIGTERM to the server and its relay at once (a service manager stopping the whole group):
  a request in flight is still answered 200, its event committed (the relay drains);
- the server SIGKILLed: the relay processes notice (their stdin pipe closes) and exit on
  their own within a few seconds;
- no relay at all (supervisor and relay SIGKILLed), or the supervisor killed alone: the
  server starts a new supervisor on the same path; readiness and tokens come back, and
  under load only requests in flight at a relay's kill fail (503);
- a relay that does not answer (stopped): /readyz answers 503 naming it until it answers.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import threading
import time

import jwt
import pytest
import requests
from sqlalchemy import select

from authserver import db, endpoints
from authserver.models import AuditEvent
from tests.support import cli
from tests.support.polling import wait_for

CC = {"grant_type": "client_credentials"}
# The load below is one client issuing as fast as it can: no 429 in its way.
pytestmark = pytest.mark.settings(ratelimit_token="1000000/minute")


# -- processes (from /proc: only the server's own tree, never another test's relay) -----------

def _ppid_and_state(pid: int) -> tuple[int, str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), fields[0]


def _descendants(root: int) -> list[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := _ppid_and_state(int(entry))) and info[1] != "Z":
            parents[int(entry)] = info[0]
    found, frontier = [], [root]
    while frontier:
        kids = [pid for pid, ppid in parents.items() if ppid in frontier]
        found += kids
        frontier = kids
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode() for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _environ(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        pairs = [e.decode().split("=", 1) for e in f.read().split(b"\0") if b"=" in e]
    return dict(pairs)


def _relay(server) -> tuple[int, int | None]:
    """(supervisor, its ``--serve`` child or None while it restarts) of this server."""
    supervisor = serving = None
    for pid in _descendants(server.process.pid):
        args = _cmdline(pid)
        if "authserver.audit_relay" in args:
            if "--serve" in args:
                serving = pid
            else:
                supervisor = pid
    assert supervisor is not None, "no audit relay under the server"
    return supervisor, serving


def _gone(pid: int) -> bool:
    info = _ppid_and_state(pid)
    return info is None or info[1] == "Z"




# -- tokens ------------------------------------------------------------------------------------



class _Load:
    """Threads issuing tokens until stopped (or the server stops taking connections); each
    result is (started, status, jti of a 200)."""

    def __init__(self, server, client: tuple[str, str], threads: int = 6):
        self.results: list[tuple[float, int, str | None]] = []
        self.errors: list[str] = []  # connection-level failures
        self._stop = threading.Event()
        self._args = (server.url + endpoints.TOKEN, client)
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        url, auth = self._args
        with requests.Session() as http:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    r = http.post(url, data=CC, auth=auth, timeout=30)
                except requests.RequestException as exc:
                    self.errors.append(type(exc).__name__)
                    return  # the server is going away
                jti = None
                if r.status_code == 200:
                    jti = jwt.decode(r.json()["access_token"],
                                     options={"verify_signature": False})["jti"]
                self.results.append((started, r.status_code, jti))

    def successes(self, since: float = 0.0) -> int:
        return sum(1 for t, s, _ in list(self.results) if s == 200 and t >= since)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=40)

    @property
    def jtis(self) -> set[str]:
        return {jti for _, _, jti in self.results if jti}


def _issued_jtis(settings) -> set[str]:
    engine = db.make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(AuditEvent.details)
                                .where(AuditEvent.type == "token.issued")).scalars()
            return {json.loads(d)["jti"] for d in rows}
    finally:
        engine.dispose()


# -- tests ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["gunicorn", "granian"])
def test_a_killed_relay_is_restarted_and_no_issued_token_lacks_its_event(
        live_server, settings, kind):
    server = live_server(server=kind, workers=2, threads=4)
    client = cli.client_credentials_client(settings, "relay")
    supervisor, old = _relay(server)
    assert old is not None
    load = _Load(server, client)
    try:
        assert wait_for(lambda: load.successes() >= 10, timeout=10)
        killed_at = time.monotonic()
        os.kill(old, signal.SIGKILL)
        # The supervisor starts a new --serve process (the same socket path); tokens come
        # back: a run of successes by requests that started after the kill.
        assert wait_for(lambda: _relay(server)[1] not in (None, old), timeout=5)
        recovered = wait_for(lambda: load.successes(since=killed_at) >= 20
                              and all(s == 200 for _, s, _ in load.results[-10:]), timeout=8)
    finally:
        load.stop()
    assert recovered, [(round(t - killed_at, 2), s) for t, s, _ in load.results[-20:]]
    assert load.errors == []
    assert _relay(server)[0] == supervisor  # the same supervisor, a new child
    # Failures: only requests whose events the killed relay had taken (in flight at the
    # kill), all 503 (the audit log unavailable), never 500; requests sent while the new
    # relay started waited in the supervisor's listening socket and got their tokens.
    failed = [(round(t - killed_at, 2), s) for t, s, _ in load.results if s != 200]
    assert all(s == 503 and -1 < t < 0.5 for t, s in failed), failed
    assert len(failed) <= 2 * 4  # at most one per worker thread
    assert load.jtis <= _issued_jtis(settings)
    assert "audit log intact" in cli.run(settings, "audit", "verify").stdout


def test_sigterm_under_load_loses_no_issued_token_event(live_server, settings):
    server = live_server(workers=2, threads=4)
    client = cli.client_credentials_client(settings, "relay")
    supervisor, serving = _relay(server)
    socket_dir = os.path.dirname(_cmdline(serving)[-1])
    load = _Load(server, client, threads=8)
    try:
        assert wait_for(lambda: load.successes() >= 30, timeout=10)
        server.process.send_signal(signal.SIGTERM)  # requests are in flight
        assert server.process.wait(timeout=30) == 0
    finally:
        load.stop()
    # Requests in flight at SIGTERM were answered 200, not 503: the relay is stopped only
    # after the workers (on_exit).
    assert [s for _, s, _ in load.results if s != 200] == []
    assert load.errors  # the load ended because the server stopped taking requests
    assert load.jtis <= _issued_jtis(settings)  # durability: every 200 has its event
    assert _gone(supervisor) and _gone(serving)
    assert not os.path.exists(socket_dir)  # removed at exit


def test_a_request_in_flight_when_server_and_relay_get_sigterm_together_is_answered(
        live_server, settings):
    """A service manager stopping the whole process group signals the relay along with the
    server: the relay must drain, answering until the workers have finished. Here the
    worker has not connected to the relay yet: its one issuance so far loaded the client
    (the Flask path, whose event commits with that request's transaction); the next one,
    in flight, finds the client cached and needs the relay."""
    # The client exists before the server starts: no change of clients empties the worker's
    # cache between the warm-up and the request in flight.
    client_id, secret = cli.client_credentials_client(settings, "relay")
    server = live_server(workers=1, threads=2)
    assert server.post(endpoints.TOKEN, data=CC, auth=(client_id, secret)).status_code == 200
    supervisor, serving = _relay(server)
    body = b"grant_type=client_credentials"
    auth = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    head = (f"POST {endpoints.TOKEN} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Basic {auth}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        sock.sendall(head + body[:10])  # in flight: its body is still coming
        time.sleep(0.5)  # the worker has taken the connection
        for pid in (server.process.pid, supervisor, serving):
            os.kill(pid, signal.SIGTERM)
        wait_for(lambda: _gone(serving), timeout=1.5)  # a relay that does not drain is gone
        sock.sendall(body[10:])
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    status_line, _, rest = response.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 200 OK", response[:400]
    token = json.loads(rest.split(b"\r\n\r\n", 1)[1])["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["jti"] in _issued_jtis(settings)
    assert server.process.wait(timeout=30) == 0


def test_the_relay_is_private_to_the_server_and_dies_with_it(live_server, settings):
    server = live_server(workers=2, threads=2)
    supervisor, serving = _relay(server)
    assert _ppid_and_state(supervisor)[0] == server.process.pid
    assert _ppid_and_state(serving)[0] == supervisor
    path = _cmdline(serving)[-1]
    socket_dir = os.path.dirname(path)
    # The socket in a directory only the server's user can enter (created by
    # RelayProcess; the workers' use of it shows in the kill test above: 503s).
    info = os.stat(socket_dir)
    assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert _cmdline(supervisor)[-1] == path  # a restarted child binds the same path
    metrics_dir = _environ(serving).get("PROMETHEUS_MULTIPROC_DIR")
    client = cli.client_credentials_client(settings, "relay")
    assert server.post(endpoints.TOKEN, data=CC, auth=client).status_code == 200

    # The server dies without stopping its relay: the relay notices and exits by itself.
    tree = {pid: _cmdline(pid) for pid in _descendants(server.process.pid)}
    server.process.kill()
    server.process.wait()
    try:
        assert wait_for(lambda: _gone(supervisor) and _gone(serving), timeout=6), \
            [(p, args) for p, args in tree.items() if not _gone(p)]
    finally:
        for pid, args in tree.items():  # whatever is left of this server's processes
            if not _gone(pid) and _cmdline(pid) == args:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(socket_dir, ignore_errors=True)  # on_exit never ran
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _new_relay(server, old_supervisor: int) -> bool:
    """Whether a supervisor other than ``old_supervisor`` runs under the server, with a
    relay that answers (readiness)."""
    try:
        supervisor, serving = _relay(server)
    except AssertionError:  # none yet
        return False
    return (supervisor != old_supervisor and serving is not None
            and server.get("/readyz").status_code == 200)


def test_a_killed_supervisor_and_relay_are_started_again(live_server, settings):
    """Nothing of the relay left (both SIGKILLed): the server starts a new supervisor on the
    same socket path; readiness and tokens come back, every event in the chain."""
    server = live_server(workers=1, threads=2)
    client = cli.client_credentials_client(settings, "relay")
    assert server.post(endpoints.TOKEN, data=CC, auth=client).status_code == 200
    supervisor, serving = _relay(server)
    for pid in (supervisor, serving):
        os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: _gone(serving), timeout=5)
    assert wait_for(lambda: _new_relay(server, supervisor), timeout=20)
    statuses = [server.post(endpoints.TOKEN, data=CC, auth=client).status_code
                for _ in range(5)]
    assert statuses == [200] * 5
    assert "audit log intact" in cli.run(settings, "audit", "verify").stdout


def test_a_supervisor_killed_alone_is_replaced_and_tokens_go_on(live_server, settings):
    """The supervisor SIGKILLed, its relay left draining (its stdin closed): a new
    supervisor takes the socket path at once; once the old relay is gone too, the workers
    reconnect to the new one. Under load: only requests in flight at the relay's kill fail,
    with 503, and every 200's event is committed."""
    server = live_server(workers=1, threads=4)
    client = cli.client_credentials_client(settings, "relay")
    supervisor, old = _relay(server)
    load = _Load(server, client, threads=4)
    try:
        assert wait_for(lambda: load.successes() >= 10, timeout=10)
        os.kill(supervisor, signal.SIGKILL)
        assert wait_for(lambda: _new_relay(server, supervisor), timeout=20)
        assert not _gone(old)  # still answering the workers' connections (draining)
        killed_at = time.monotonic()
        os.kill(old, signal.SIGKILL)  # as if its drain had ended
        recovered = wait_for(lambda: load.successes(since=killed_at + 0.5) >= 20, timeout=10)
    finally:
        load.stop()
    assert recovered, [(round(t - killed_at, 2), s) for t, s, _ in load.results[-20:]]
    assert load.errors == []
    failed = [(round(t - killed_at, 2), s) for t, s, _ in load.results if s != 200]
    assert all(s == 503 and -1 < t < 0.5 for t, s in failed), failed
    assert len(failed) <= 4  # at most one per worker thread
    assert load.jtis <= _issued_jtis(settings)
    assert "audit log intact" in cli.run(settings, "audit", "verify").stdout


def test_readiness_names_a_relay_that_does_not_answer(live_server, settings):
    """A stopped (hung) relay: its socket still accepts (the supervisor holds it), but the
    readiness ping gets no answer, so /readyz is 503 until the relay answers again."""
    server = live_server(workers=1, threads=2)
    _, serving = _relay(server)
    os.kill(serving, signal.SIGSTOP)
    try:
        ready = server.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["audit_relay"] == "unreachable"
    finally:
        os.kill(serving, signal.SIGCONT)
    assert wait_for(lambda: server.get("/readyz").status_code == 200, timeout=10)


@pytest.mark.settings(audit_group_commit_wait_us=100_000)
def test_the_relay_process_waits_as_configured_for_events_arriving_together(
        live_server, settings):
    """AUTHSERVER_AUDIT_GROUP_COMMIT_WAIT_US reaches the relay process of `authserver serve`:
    from busy workers (frames with BUSY_LOAD), after a batch of two, a lone event waits the
    configured 0.1 s for company (the default, 2 ms, would answer it at once)."""
    from authserver import audit, audit_relay

    server = live_server(workers=1, threads=2)
    path = _cmdline(_relay(server)[1])[-1]

    def event(n: int) -> bytes:
        return audit_relay.frame(audit.event_row(
            "token.issued", actor="client:e2e-linger", client_id="e2e-linger",
            details={"grant_type": "client_credentials", "n": n}), audit_relay.BUSY_LOAD)

    def answered(conn: socket.socket, frames: bytes, count: int) -> float:
        started = time.monotonic()
        conn.sendall(frames)
        answers = b""
        while len(answers) < count:
            chunk = conn.recv(count)
            assert chunk, "the relay closed the connection"
            answers += chunk
        assert answers == audit_relay.COMMITTED * count
        return time.monotonic() - started

    with contextlib.ExitStack() as stack:
        conns = []
        for _ in range(4):
            conn = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
            conn.settimeout(10)
            conn.connect(path)
            conns.append(conn)
        for n, conn in enumerate(conns):  # 4 active clients: a waiting batch goes at 2
            answered(conn, event(10 + n), 1)
        answered(conns[0], event(1) + event(2), 2)  # arriving together
        assert answered(conns[1], event(3), 1) >= 0.09  # alone after them: it waited
    engine = db.make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(AuditEvent.seq).where(
                AuditEvent.client_id == "e2e-linger")).all()
    finally:
        engine.dispose()
    assert len(rows) == 7 and all(seq is not None for (seq,) in rows)


@pytest.mark.parametrize("kind", ["gunicorn", "granian"])
def test_the_workers_know_their_request_threads(live_server, kind):
    """`serve --threads N` puts N in the server's environment as AUTHSERVER_WORKER_THREADS
    (Settings.worker_threads: the load each worker reports, web/in_flight.py) before any
    worker or the relay starts. Forked workers' /proc environ shows only what the server was
    started with (here the harness's 0); the relay, started by exec in between, shows what
    they inherited."""
    server = live_server(server=kind, workers=2, threads=3)
    supervisor, serving = _relay(server)
    assert _environ(supervisor).get("AUTHSERVER_WORKER_THREADS") == "3"
    assert _environ(serving).get("AUTHSERVER_WORKER_THREADS") == "3"
