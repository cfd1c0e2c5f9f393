"""Prometheus metrics (text format at ``GET /metrics``).

Under gunicorn every worker is a process of its own: ``authserver serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at a directory made for that server (serve.py) before any worker
imports this module, so each worker writes its samples to memory-mapped files there and a
scrape answered by any worker aggregates all of them; a worker that exits is marked dead
(gunicorn ``child_exit``). Without that variable (tests, ``flask run``) the process's own
registry is served.

What is counted, and where:

- ``authserver_http_requests_total`` / ``authserver_http_request_duration_seconds``: every
  request, by URL rule (never the raw path: no ids or tokens in labels) — app.py hooks.
- ``authserver_tokens_issued_total{grant_type, client_id}``: ``token_issued()``, called for
  every committed ``token.issued`` audit event (audit.py), so every grant is counted exactly
  when its issuance is durable, without each grant having to remember it.
- ``authserver_errors_total{error}``: ``error()`` for every error response — the RFC 6749 /
  6750 / 7591 ``error`` code of JSON bodies, ``http_<status>`` otherwise (app.py).
- ``authserver_ratelimit_hits_total{policy}``: ``ratelimit_hit(policy)``, called by the rate
  limiter when a request is refused with 429.
- ``authserver_signing_key_age_seconds``: seconds since the oldest active signing key was
  activated, computed at scrape time from the process's key set (alert when it exceeds the
  rotation period: the schedule is not running).
"""

from __future__ import annotations

import bisect
import os
import re
import threading
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter(
    "authserver_http_requests_total", "HTTP requests", ["endpoint", "method", "status"]
)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
LATENCY = Histogram(
    "authserver_http_request_duration_seconds", "Request latency", ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
TOKENS_ISSUED = Counter(
    "authserver_tokens_issued_total", "Access tokens issued (committed)",
    ["grant_type", "client_id"],
)
ERRORS = Counter("authserver_errors_total", "Error responses by error code", ["error"])
RATELIMIT_HITS = Counter(
    "authserver_ratelimit_hits_total", "Requests refused by a rate limit", ["policy"]
)

# Label values come from our own code, but bound them anyway: a label is never free text.
_LABEL = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def _label(value: object) -> str:
    text = str(value) if value is not None else "none"
    return text if _LABEL.match(text) else "other"


def token_issued(grant_type: str, client_id: str | None, count: int = 1) -> None:
    TOKENS_ISSUED.labels(_label(grant_type), _label(client_id)).inc(count)


def error(code: str) -> None:
    ERRORS.labels(_label(code)).inc()


def ratelimit_hit(policy: str) -> None:
    """Call when a request is refused by the named limit policy (e.g. ``login``, ``token``)."""
    RATELIMIT_HITS.labels(_label(policy)).inc()


class RequestTally:
    """The fast path's requests and latencies (web/fast_path.py), tallied in plain dicts and
    folded into REQUESTS and LATENCY in one go at most every FLUSH_SECONDS (by a daemon
    thread per process) and before each exposition. Each inc of a multiprocess value takes
    a process-wide lock and writes an mmap; three per request were 8 % of an introspection
    (measured). A scrape may miss the last FLUSH_SECONDS of another worker's requests.

    The histogram is folded through the child's bucket and sum values, as its ``observe``
    does (prometheus_client internals: tests/unit/test_metrics_tally.py holds the result to
    what ``observe`` gives)."""

    FLUSH_SECONDS = 0.5

    def __init__(self):
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = {}
        self._latency: dict[str, list[float]] = {}  # rule -> [count per bucket ..., sum]
        self._bounds = list(LATENCY._upper_bounds)  # ascending, +Inf last
        self._pid: int | None = None

    def add(self, rule: str, method: str, status: int, seconds: float) -> None:
        if self._pid != os.getpid():
            self._start()
        key = (rule, method, str(status))
        with self._lock:
            self._requests[key] = self._requests.get(key, 0) + 1
            slots = self._latency.get(rule)
            if slots is None:
                slots = self._latency[rule] = [0.0] * (len(self._bounds) + 1)
            slots[bisect.bisect_left(self._bounds, seconds)] += 1
            slots[-1] += seconds

    def flush(self) -> None:
        with self._lock:
            requests, self._requests = self._requests, {}
            latency, self._latency = self._latency, {}
        for labels, count in requests.items():
            REQUESTS.labels(*labels).inc(count)
        for rule, slots in latency.items():
            child = LATENCY.labels(rule)
            for i, count in enumerate(slots[:-1]):
                if count:
                    child._buckets[i].inc(count)
            child._sum.inc(slots[-1])

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()  # after a fork: the parent's flusher is not here
            threading.Thread(target=self._run, name="metrics-flush", daemon=True).start()

    def _run(self) -> None:
        while True:
            time.sleep(self.FLUSH_SECONDS)
            self.flush()


TALLY = RequestTally()


class _KeyAge:
    """Collects the key age from the process's key set at scrape time (no stored gauge, so
    nothing goes stale in the multiprocess files)."""

    def __init__(self, active_since, now: float):
        self._active_since, self._now = active_since, now

    def collect(self):
        family = GaugeMetricFamily(
            "authserver_signing_key_age_seconds",
            "Seconds since the oldest active signing key was activated",
        )
        if self._active_since is not None:
            family.add_metric([], max(0.0, self._now - self._active_since.timestamp()))
        yield family


def exposition(active_since=None, now: float | None = None) -> tuple[bytes, str]:
    """The Prometheus text exposition; ``active_since`` is the key set's activation time."""
    TALLY.flush()
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        from prometheus_client import REGISTRY

        body = generate_latest(REGISTRY)
    extra = CollectorRegistry()
    extra.register(_KeyAge(active_since, time.time() if now is None else now))
    return body + generate_latest(extra), CONTENT_TYPE_LATEST
