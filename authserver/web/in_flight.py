"""Requests in progress in this process, for the audit relay's group commit.

A worker whose request threads are all busy has requests queued in front of it (in the
server's accept queue): while some of its threads wait for their audit events' commit, the
others use the CPU, so the relay may let a batch wait for more events (fewer commits, less
CPU per token). A worker with idle threads has nothing queued: a wait would only add to its
clients' latency. Each event sent to the relay carries this load (``InFlight.load``,
audit_relay.frame).
"""

from __future__ import annotations

import threading

from ..audit_relay import BUSY_LOAD


class InFlight:
    """``count``: the requests this process is answering, counted by ``wrap``'s middleware.
    ``threads``: the process's request threads (0: not known)."""

    def __init__(self, threads: int = 0):
        self._lock = threading.Lock()  # += is not atomic across threads
        self.count = 0
        self._busy_at = min(threads, BUSY_LOAD) if threads > 0 else BUSY_LOAD

    def load(self) -> int:
        """The load to report: ``count``, and at least BUSY_LOAD once every request thread is
        in a request (a worker of fewer threads would never count as busy: measured with
        8 workers x 2 threads, 0.38-0.43 commits per token without the group commit against
        0.14-0.18 with it, README Performance)."""
        count = self.count
        return max(count, BUSY_LOAD) if count >= self._busy_at else count

    def wrap(self, app) -> Counted:
        return Counted(app, self)


class Counted:
    """WSGI middleware counting the requests in progress in ``in_flight``; ``app`` is the
    application inside (as ProxyFix's)."""

    def __init__(self, app, in_flight: InFlight):
        self.app, self._in_flight = app, in_flight

    def __call__(self, environ, start_response):
        counter = self._in_flight
        with counter._lock:
            counter.count += 1
        try:
            return self.app(environ, start_response)
        finally:
            with counter._lock:
                counter.count -= 1
