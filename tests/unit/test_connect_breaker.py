"""db.ConnectBreaker's rule, with a stand-in dialect whose connects we control (the e2e test
tests/e2e/test_database_unreachable.py runs it against a PostgreSQL gone dark)."""

from __future__ import annotations

import threading

import pytest

from authserver import db


class _Refused(Exception):
    pass


class _Dialect:
    class loaded_dbapi:  # noqa: N801 - the DB-API module's shape
        OperationalError = _Refused

    def __init__(self):
        self.attempts = 0
        self.fail = True
        self.gate: threading.Event | None = None

    def connect(self, *cargs, **cparams):
        self.attempts += 1
        if self.gate is not None:
            self.gate.wait(5)
        if self.fail:
            raise _Refused("connection timed out")
        return "connection"


@pytest.fixture
def now(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(db.time, "monotonic", lambda: clock[0])
    return clock


def test_after_a_failure_attempts_fail_at_once_until_one_may_try_again(now):
    breaker, dialect = db.ConnectBreaker(), _Dialect()
    with pytest.raises(_Refused, match="timed out"):
        breaker.connect(dialect, None, (), {})
    for _ in range(3):
        with pytest.raises(_Refused, match="moments ago"):
            breaker.connect(dialect, None, (), {})
    assert dialect.attempts == 1  # the dead database was not tried again
    now[0] += db.ConnectBreaker.RETRY_SECONDS
    dialect.fail = False
    assert breaker.connect(dialect, None, (), {}) == "connection"
    assert breaker.connect(dialect, None, (), {}) == "connection"  # closed again
    assert dialect.attempts == 3


def test_while_failing_one_attempt_at_a_time(now):
    breaker, dialect = db.ConnectBreaker(), _Dialect()
    with pytest.raises(_Refused):
        breaker.connect(dialect, None, (), {})
    now[0] += db.ConnectBreaker.RETRY_SECONDS
    dialect.gate = threading.Event()
    outcome = []
    trying = threading.Thread(target=lambda: outcome.append(
        pytest.raises(_Refused, breaker.connect, dialect, None, (), {})))
    trying.start()
    for _ in range(500):  # until the second attempt is under way (5 s at most)
        if dialect.attempts == 2:
            break
        threading.Event().wait(0.01)
    with pytest.raises(_Refused, match="moments ago"):
        breaker.connect(dialect, None, (), {})
    dialect.gate.set()
    trying.join(5)
    assert dialect.attempts == 2 and len(outcome) == 1


def test_without_failures_connections_are_not_held_back(now):
    breaker, dialect = db.ConnectBreaker(), _Dialect()
    dialect.fail = False
    assert [breaker.connect(dialect, None, (), {}) for _ in range(3)] == ["connection"] * 3
    assert dialect.attempts == 3
