"""The in-process rate-limit storage (ratelimit_memory.py): limits' MemoryStorage without
its stream of timer threads, the same verdicts, expired entries still swept."""

from __future__ import annotations

import threading
import time

import pytest
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from authserver import ratelimit_memory
from authserver.ratelimit import Limits
from authserver.ratelimit_memory import SweptMemoryStorage


def _threads_started_while_hitting(storage, seconds: float, monkeypatch) -> list[str]:
    """Names of the threads started while one key is hit every 2 ms for ``seconds``."""
    started: list[str] = []
    start = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start",
                        lambda self: started.append(self.name) or start(self))
    limiter = MovingWindowRateLimiter(storage)
    item = RateLimitItemPerSecond(1_000_000, 1)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert limiter.hit(item, "busy")
        time.sleep(0.002)
    monkeypatch.undo()
    return started


def test_a_busy_process_starts_one_sweeper_where_limits_starts_a_timer_every_10_ms(
        monkeypatch):
    ours = _threads_started_while_hitting(SweptMemoryStorage(), 0.3, monkeypatch)
    assert ours == ["ratelimit-sweeper"]
    # What the override is for (if limits stops doing this, the override can go):
    theirs = _threads_started_while_hitting(MemoryStorage(), 0.3, monkeypatch)
    assert len(theirs) >= 5, theirs


def test_verdicts_are_limits_own_and_expired_entries_are_swept(monkeypatch):
    monkeypatch.setattr(ratelimit_memory, "SWEEP_SECONDS", 0.05)
    storage = SweptMemoryStorage()
    limiter = MovingWindowRateLimiter(storage)
    item = RateLimitItemPerSecond(2, 1)
    assert limiter.hit(item, "k") and limiter.hit(item, "k")
    assert not limiter.hit(item, "k")  # the third within the second is refused
    assert limiter.test(item, "other")  # keys apart
    time.sleep(1.1)
    assert limiter.test(item, "k")  # the window moved on
    deadline = time.monotonic() + 2
    while any(storage.events.values()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert list(storage.events.values()) == [[]]  # the sweeper dropped the expired entries
    assert limiter.hit(item, "k") and limiter.hit(item, "k") and not limiter.hit(item, "k")


@pytest.mark.parametrize(("configured", "expected"), [
    ("memory://", "authserver-memory://"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
])
def test_only_the_memory_storage_is_replaced(configured, expected):
    assert ratelimit_memory.storage_uri(configured) == expected


def test_the_apps_limits_use_it_by_default(settings):
    limits = Limits(settings.replace(ratelimit_storage_url="memory://"))
    assert type(limits.limiter._storage) is SweptMemoryStorage


@pytest.mark.parametrize("method", [ratelimit_memory.TIMER_METHOD,
                                    ratelimit_memory.EXPIRE_METHOD])
def test_a_limits_without_the_methods_keeps_its_own_storage(method, monkeypatch):
    monkeypatch.delattr(MemoryStorage, method)
    assert ratelimit_memory.storage_uri("memory://") == "memory://"
