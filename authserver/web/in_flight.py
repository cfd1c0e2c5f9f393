"""Requests in progress in this process, for the audit relay's group commit.

A worker whose request threads are all busy has requests queued in front of it (in the
server's accept queue): while some of its threads wait for their audit events' commit, the
others use the CPU, so the relay may let a batch wait for more events (fewer commits, less
CPU per token). A worker with idle threads has nothing queued: a wait would only add to its
clients' latency. Each event sent to the relay carries this count (audit_relay.frame).
"""

from __future__ import annotations

import threading


class InFlight:
    """``count``: the requests this process is answering, counted by ``wrap``'s middleware."""

    def __init__(self):
        self._lock = threading.Lock()  # += is not atomic across threads
        self.count = 0

    def wrap(self, app):
        def counted(environ, start_response):
            with self._lock:
                self.count += 1
            try:
                return app(environ, start_response)
            finally:
                with self._lock:
                    self.count -= 1
        return counted
