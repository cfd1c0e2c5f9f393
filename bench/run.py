"""The benchmark suite: authserver as production runs it, driven by wrk.

    make bench                      # PostgreSQL and SQLite, 16 and 64 connections
    .venv/bin/python bench/run.py --db postgresql --duration 10 --scale

For each database it creates a fresh database (a PostgreSQL schema of its own, or an SQLite
file), runs `authserver init`, provisions clients with the real CLI, starts `authserver serve`
(same worker settings as production) and drives each endpoint with Debian's wrk (installed if
missing): code exchange and refresh rotation (single-use codes and refresh tokens minted
beforehand by bench/mint.py through the server's own services, each used once),
client-credentials token, introspection and JWKS. In the same run it
measures a bare Flask app under the same gunicorn settings (the framework floor) and the
in-process verifier. `--scale` runs a second PostgreSQL server beside the first, its database
holding 100,000 more clients and 1,000,000 revoked-token records, and measures the two in
alternating rounds (this VM's speed drifts by more than the 10 % being judged within minutes;
the same minute for both sides leaves the database as the difference). Every row has the
whole machine's CPU time per request beside its throughput: the steadier figure here. It
prints tables; it asserts nothing.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG_URL = os.environ.get("AUTHSERVER_BENCH_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# The limits stay on (every request is counted), high enough never to refuse. A one-second
# window: the moving window keeps one entry per request in it, so a per-minute window at
# thousands of requests a second would measure a list of 100,000s of entries that no real
# limit (default 300/minute per client) ever holds.
UNLIMITED = "1000000/second"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    print("installing Debian's wrk …", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "wrk"], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which("wrk") or sys.exit("wrk could not be installed")


def wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"not ready: {url}")


# -- wrk ---------------------------------------------------------------------------------------

_LUA_POST = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
{auth}
local bodies = {{{bodies}}}
local i = 0
request = function()
  i = i + 1
  local body = bodies[((i - 1) % #bodies) + 1]
  return wrk.format(nil, nil, nil, body)
end
"""

_LUA_ONCE = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
{auth}
local bodies = {{}}
for line in io.lines("{path}") do bodies[#bodies + 1] = line end
local counter = 0
local thread_id = 0
setup = function(thread) thread:set("tid", thread_id); thread_id = thread_id + 1 end
init = function(args) counter = tid end
request = function()
  local body = bodies[(counter % #bodies) + 1]
  counter = counter + {threads}
  return wrk.format(nil, nil, nil, body)
end
"""


class OnceScript:
    """A wrk script over single-use request bodies: each run gets its own slice of the
    minted lines, and each line is sent once (threads interleave by offset)."""

    def __init__(self, auth: str, path: Path, runs: int):
        self._auth, self._lines = auth, path.read_text().splitlines()
        self._chunk = max(1, len(self._lines) // runs)
        self._path, self._run = path, 0

    def __str__(self) -> str:
        part = self._path.with_suffix(f".{self._run}.txt")
        start = self._run * self._chunk
        part.write_text("\n".join(self._lines[start:start + self._chunk]) + "\n")
        self._run += 1
        return _LUA_ONCE.format(auth=self._auth, path=part, threads=2)


def lua_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def basic_header(client_id: str, secret: str) -> str:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return f'wrk.headers["Authorization"] = "Basic {raw}"'


def run_wrk(wrk: str, url: str, connections: int, duration: int, script,
            threads: int = 2) -> dict:
    script = str(script) if script is not None else None
    cmd = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
           "--timeout", "5s"]
    tmp = None
    if script:
        tmp = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        tmp.write(script)
        tmp.close()
        cmd += ["-s", tmp.name]
    busy = cpu_seconds()
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=duration + 60)
    busy = cpu_seconds() - busy
    if tmp:
        os.unlink(tmp.name)
    result = parse_wrk(out.stdout)
    # The whole machine's: server, relay, database and wrk itself (steadier than req/s here).
    result["cpu_us"] = busy / result["requests"] * 1e6 if result["requests"] else float("nan")
    return result


def cpu_seconds() -> float:
    """CPU time the whole machine has spent busy, all cores (/proc/stat: user, nice, system,
    irq, softirq; idle, iowait and the hypervisor's steal excluded)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq = map(int, f.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def settle(base_url: str, timeout: float = 30) -> None:
    """Wait until the server has answered what the previous run left queued: wrk stops
    sending at the end of its run, not the server working (a 64-connection run of 500 ms
    requests leaves ~0.5 s of work, which the next run would otherwise measure as its own
    p99). Each worker answers its accepted requests in turn, so a few quick probes in a row
    mean the queues are empty."""
    deadline = time.monotonic() + timeout
    quick = 0
    while quick < 4 and time.monotonic() < deadline:
        started = time.monotonic()
        try:
            with urlopen(base_url + "/healthz", timeout=timeout) as r:
                r.read()
        except OSError:
            time.sleep(0.1)
            continue
        quick = quick + 1 if time.monotonic() - started < 0.05 else 0


def quiet(timeout: float = 15, busy_share: float = 0.15) -> None:
    """Wait until the machine idles: what a run leaves behind runs on after wrk stops (the
    other server's queue in --scale, sealing, PostgreSQL's autovacuum) and would be counted
    in the next run's figures. One quarter second with under ``busy_share`` of the cores
    busy, or ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds()
        time.sleep(0.25)
        if cpu_seconds() - before < 0.25 * busy_share * (os.cpu_count() or 1):
            return


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(text: str) -> dict:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p50 = re.search(r"\s50%\s+(\S+)", text)
    p99 = re.search(r"\s99%\s+(\S+)", text)
    total = re.search(r"(\d+) requests in", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                     text)
    errors = int(non2xx.group(1)) if non2xx else 0
    if sock:
        errors += sum(int(g) for g in sock.groups())
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50": _ms(p50.group(1)) if p50 else float("nan"),
        "p99": _ms(p99.group(1)) if p99 else float("nan"),
        "requests": int(total.group(1)) if total else 0,
        "errors": errors,
    }


# -- the server under test -----------------------------------------------------------------------

class Target:
    """A fresh database, `authserver init`, clients from the CLI, `authserver serve`."""

    def __init__(self, db: str, workers: int, threads: int, server: str = "gunicorn",
                 duration: int = 8, runs: int = 2, name: str = "main"):
        """``runs``: how many measurements each single-use scenario gets."""
        self.db, self.workers, self.threads, self.server = db, workers, threads, server
        self.tmp = Path(tempfile.mkdtemp(prefix=f"authserver-bench-{db}-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.schema = None
        if db == "postgresql":
            self.schema = f"bench_{name}_{os.getpid()}"
            self._psql(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE; '
                       f'CREATE SCHEMA "{self.schema}"')
            database_url = f"{PG_URL}?options=-csearch_path%3D{self.schema}"
        else:
            database_url = f"sqlite:///{self.tmp / 'authserver.db'}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AUTHSERVER_")},
            "AUTHSERVER_ISSUER": self.url,
            "AUTHSERVER_DATABASE_URL": database_url,
            "AUTHSERVER_KEYS_DIR": str(self.tmp / "keys"),
            "AUTHSERVER_LOG_LEVEL": "WARNING",
            "AUTHSERVER_RATELIMIT_TOKEN": UNLIMITED,
            "AUTHSERVER_RATELIMIT_INTROSPECTION": UNLIMITED,
            "AUTHSERVER_RATELIMIT_ADMIN": UNLIMITED,
            # At least one pooled connection per thread (Configuration: DB_POOL_SIZE): a
            # pool smaller than the threads opens and closes overflow connections under load.
            "AUTHSERVER_DB_POOL_SIZE": str(max(5, threads)),
            # Codes are minted before the runs; they must outlive all of them.
            "AUTHSERVER_CODE_TTL": "3600",
        }
        self.process = None
        # Single-use codes and refresh tokens per kind: each run gets its own share, enough
        # for 1,200/s (a code used twice is an error, and these endpoints answered 600-700/s
        # on 2 cores).
        self.runs = runs
        self.mint_count = 1200 * duration * runs

    def _psql(self, sql: str) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(PG_URL)
        with engine.begin() as conn:
            conn.execute(text(sql))
        engine.dispose()

    def cli(self, *args: str, stdin: str | None = None) -> str:
        out = subprocess.run([str(BIN / "authserver"), *args], env=self.env, input=stdin,
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise SystemExit(f"authserver {' '.join(args)} failed: {out.stderr}")
        return out.stdout

    def start(self) -> None:
        self.cli("init")
        log = open(self.tmp / "serve.log", "wb")  # noqa: SIM115 - kept for the process
        self.process = subprocess.Popen(
            [str(BIN / "authserver"), "serve", "--port", str(self.port),
             "--workers", str(self.workers), "--threads", str(self.threads),
             "--server", self.server],
            env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_ready(self.url + "/readyz")

    def client(self, name: str, *extra: str) -> dict:
        return json.loads(self.cli("clients", "create", "--name", name, "--grant",
                                   "client_credentials", *extra, "--json"))

    def web_client(self) -> dict:
        return json.loads(self.cli(
            "clients", "create", "--name", "bench-web", "--grant", "authorization_code",
            "--grant", "refresh_token", "--scope", "openid", "--default-scope", "openid",
            "--redirect-uri", "https://app.example/cb", "--json"))

    def token(self, client: dict) -> str:
        from urllib.request import Request

        req = Request(self.url + "/oauth2/token", data=b"grant_type=client_credentials",
                      headers={"Authorization": "Basic " + base64.b64encode(
                          f"{client['client_id']}:{client['client_secret']}".encode()
                      ).decode()})
        with urlopen(req, timeout=10) as r:
            return json.loads(r.read())["access_token"]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        if self.schema:
            self._psql(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        shutil.rmtree(self.tmp, ignore_errors=True)


def seed_scale(target: Target, clients: int, tokens: int) -> None:
    """100k clients and 1M revoked-token records, straight into PostgreSQL."""
    target._psql(f"""
        SET search_path = "{target.schema}";
        INSERT INTO clients (client_id, client_name, grant_types, redirect_uris,
            post_logout_redirect_uris, scope, default_scope, audiences,
            token_endpoint_auth_method, ip_allowlist, id_token_signed_response_alg,
            skip_consent, enabled, secret_digest, created_at, updated_at)
        SELECT 'seed-' || g, 'seed ' || g, '["client_credentials"]', '[]', '[]', 'a', 'a',
               '[]', 'client_secret_basic', '[]', 'RS256', false, true, md5(g::text),
               now(), now()
        FROM generate_series(1, {clients}) g;
        INSERT INTO revoked_tokens (jti, client_id, revoked_at, expires_at)
        SELECT md5(g::text), 'seed-' || (g % {clients} + 1), now(), now() + interval '1 day'
        FROM generate_series(1, {tokens}) g;
    """)
    # Vacuum and analyse now, so autovacuum does not run during the measurements.
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for table in ("clients", "revoked_tokens", "audit_events"):
            conn.execute(text(f'VACUUM ANALYZE "{target.schema}".{table}'))
    engine.dispose()


# -- scenarios ---------------------------------------------------------------------------------

def scenarios(target: Target) -> list[tuple[str, str, str | None]]:
    """(name, url, wrk script) for each endpoint."""
    cc = target.client("bench-cc", "--scope", "a", "--default-scope", "a")
    rs = target.client("bench-rs", "--scope", "x")
    token = target.token(cc)
    web = target.web_client()
    mint_dir = target.tmp / "mint"
    mint_dir.mkdir()
    subprocess.run([sys.executable, str(ROOT / "bench" / "mint.py"), web["client_id"],
                    str(target.mint_count), str(mint_dir)], env=target.env, check=True,
                   cwd=ROOT)
    # Minting wrote tens of thousands of audit events; seal them now (`audit verify` seals
    # what is pending), so that sealing the backlog is not measured as part of a run.
    target.cli("audit", "verify")
    web_auth = basic_header(web["client_id"], web["client_secret"])
    once = {kind: OnceScript(web_auth, mint_dir / f"{kind}.txt", runs=target.runs)
            for kind in ("code", "refresh")}
    return [
        ("code exchange", target.url + "/oauth2/token", once["code"]),
        ("refresh (rotation)", target.url + "/oauth2/token", once["refresh"]),
        ("client_credentials token", target.url + "/oauth2/token",
         _LUA_POST.format(auth=basic_header(cc["client_id"], cc["client_secret"]),
                          bodies=lua_quote("grant_type=client_credentials"))),
        ("introspection", target.url + "/oauth2/introspect",
         _LUA_POST.format(auth=basic_header(rs["client_id"], rs["client_secret"]),
                          bodies=lua_quote("token=" + token))),
        ("JWKS", target.url + "/.well-known/jwks.json", None),
    ]


def print_table(title: str, rows: list[tuple[str, int, dict]], floor: dict[int, dict]) -> None:
    print(f"\n{title}")
    print(f"{'endpoint':28} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'errors':>7} {'/floor':>7} {'CPU us/req':>10}")
    for name, conns, r in rows:
        ratio = r["rps"] / floor[conns]["rps"] if floor.get(conns, {}).get("rps") else 0
        print(f"{name:28} {conns:5d} {r['rps']:9,.0f} {r['p50']:8.2f} {r['p99']:8.2f} "
              f"{r['errors']:7d} {ratio:7.0%} {r['cpu_us']:10,.0f}")
    sys.stdout.flush()


def measure_floor(wrk: str, args, server: str) -> dict[int, dict]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "floor_serve.py"), str(port),
                             str(args.workers), str(args.threads), server], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}/floor")
        return {c: run_wrk(wrk, f"http://127.0.0.1:{port}/floor", c, args.duration, None)
                for c in args.connections}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def measure(target: Target, wrk: str, url: str, connections: int, duration: int,
            script, others: tuple[Target, ...] = ()) -> dict:
    for server in (target, *others):
        settle(server.url)
    quiet()
    return run_wrk(wrk, url, connections, duration, script)


def selected(plan: list, args) -> list:
    return [s for s in plan if not args.only or any(o in s[0] for o in args.only)]


def bench_target(wrk: str, db: str, args, floor: dict, server: str) -> None:
    target = Target(db, args.workers, args.threads, server, args.duration,
                    runs=len(args.connections))
    try:
        target.start()
        rows = [(name, c, measure(target, wrk, url, c, args.duration, script))
                for name, url, script in selected(scenarios(target), args)
                for c in args.connections]
        print_table(f"authserver on {db}, {server} ({args.workers} workers x {args.threads} "
                    "threads)", rows, floor)
    finally:
        target.stop()


def median_run(runs: list[dict]) -> dict:
    """The median of each figure over repeated runs (errors: the sum)."""
    return {**{k: statistics.median(r[k] for r in runs)
               for k in ("rps", "p50", "p99", "cpu_us")},
            "errors": sum(r["errors"] for r in runs)}


def bench_scale(wrk: str, args, floor: dict, server: str) -> None:
    """The same scenarios against two servers side by side, one on an empty PostgreSQL
    schema, one on a schema seeded with 100k clients and 1M revoked-token records, measured
    in alternating rounds (ABBA: neither side always goes first), each figure the median
    of its rounds. Only the measured server has work; the other idles."""
    runs = len(args.connections) * args.rounds
    sides = [Target("postgresql", args.workers, args.threads, server, args.duration, runs, name)
             for name in ("empty", "scaled")]
    try:
        for side in sides:
            side.start()
        seed_scale(sides[1], 100_000, 1_000_000)
        plans = [selected(scenarios(side), args) for side in sides]
        results: dict[tuple[str, int], tuple[list, list]] = {}
        for i, (name, _, _) in enumerate(plans[0]):
            for c in args.connections:
                for r in range(args.rounds):
                    for k in ((0, 1) if r % 2 == 0 else (1, 0)):
                        _, url, script = plans[k][i]
                        results.setdefault((name, c), ([], []))[k].append(
                            measure(sides[k], wrk, url, c, args.duration, script,
                                    others=(sides[1 - k],)))
        medians = {key: (median_run(a), median_run(b)) for key, (a, b) in results.items()}
        for k, label in ((0, "empty database"),
                         (1, "100,000 clients and 1,000,000 revoked-token records")):
            print_table(f"authserver on postgresql, {server} ({args.workers} workers x "
                        f"{args.threads} threads), {label}: median of {args.rounds} rounds, "
                        "alternating with the other database",
                        [(name, c, pair[k]) for (name, c), pair in medians.items()], floor)
        print(f"\n{'scale: endpoint':28} {'conns':>5} {'empty/s':>9} {'scaled/s':>9} "
              f"{'change':>7} {'CPU us/req':>10} {'scaled':>8} {'change':>7}")
        for (name, c), (before, after) in medians.items():
            print(f"{name:28} {c:5d} {before['rps']:9,.0f} {after['rps']:9,.0f} "
                  f"{_change(before['rps'], after['rps']):>7} {before['cpu_us']:10,.0f} "
                  f"{after['cpu_us']:8,.0f} {_change(before['cpu_us'], after['cpu_us']):>7}")
        sys.stdout.flush()
    finally:
        for side in sides:
            side.stop()


def _change(before: float, after: float) -> str:
    return f"{after / before - 1:+.0%}" if before else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description="authserver benchmark suite")
    parser.add_argument("--db", choices=["postgresql", "sqlite", "both"], default="both")
    parser.add_argument("--duration", type=int, default=8, help="seconds per measurement")
    parser.add_argument("--connections", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--server", nargs="+", choices=["granian", "gunicorn"],
                        default=["granian", "gunicorn"], help="`authserver serve --server`")
    # Two workers per core (README, Performance: workers x threads measured; granian's
    # workers are bound by their interpreter lock, four on two cores issued ~30 % more tokens
    # than two with the relay's group commit).
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1),
                        help="default: two per CPU")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--only", nargs="+", default=[],
                        help="scenarios whose name contains one of these words")
    parser.add_argument("--no-floor", action="store_true", help="skip the framework floor")
    parser.add_argument("--scale", action="store_true",
                        help="PostgreSQL: an empty database against one with 100k clients and "
                             "1M token records, in alternating rounds")
    parser.add_argument("--rounds", type=int, default=3,
                        help="--scale: measurements per side for each scenario (median)")
    args = parser.parse_args()
    wrk = ensure_wrk()
    print(f"machine: {os.cpu_count()} CPUs; wrk: {wrk}; {args.duration}s per measurement")
    for server in args.server:
        floor = {} if args.no_floor else measure_floor(wrk, args, server)
        if floor:
            print_table(f"framework floor: bare Flask JSON, same {server} settings",
                        [("floor", c, r) for c, r in floor.items()], floor)
        for db in (["postgresql", "sqlite"] if args.db == "both" else [args.db]):
            if args.scale and db == "postgresql":
                bench_scale(wrk, args, floor, server)
            else:
                bench_target(wrk, db, args, floor, server)
    if args.only and "verifier" not in args.only:
        return
    print("\nin-process verifier (bench/verifier_bench.py):", flush=True)
    subprocess.run([sys.executable, str(ROOT / "bench" / "verifier_bench.py")], cwd=ROOT,
                   check=False)


if __name__ == "__main__":
    main()
