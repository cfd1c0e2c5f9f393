"""The load a worker reports with each audit event (web/in_flight.py): its requests in
progress, and at least the relay's BUSY_LOAD once all its request threads are in requests,
so that a worker of fewer threads than BUSY_LOAD can count as busy (group commit)."""

from __future__ import annotations

import pytest

from authserver.audit_relay import BUSY_LOAD
from authserver.web.in_flight import InFlight


def _load(threads: int, in_progress: int) -> int:
    counter = InFlight(threads)
    counter.count = in_progress
    return counter.load()


@pytest.mark.parametrize("threads", [0, BUSY_LOAD, 8, 64])
def test_with_four_threads_or_more_the_load_is_the_count(threads):
    assert [_load(threads, n) for n in range(10)] == list(range(10))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_a_worker_of_fewer_threads_is_busy_once_all_of_them_are(threads):
    below = [_load(threads, n) for n in range(threads)]
    assert below == list(range(threads))  # idle threads left: the count, not busy
    assert all(load < BUSY_LOAD for load in below)
    assert _load(threads, threads) == BUSY_LOAD
