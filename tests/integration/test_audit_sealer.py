"""The per-process sealer (audit.Sealer): it seals every ``interval`` only while its process
has inserted unsealed events, and otherwise sweeps once every SWEEP_SECONDS for events
others left unsealed (the CLI, a process that ended before its seal)."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from authserver import audit
from authserver.models import AuditEvent
from tests.support.polling import wait_for


def _unsealed(app) -> int:
    with app.extensions["authserver"].session_factory() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent)
                              .where(AuditEvent.seq.is_(None)))


def _record(app, n: int = 1) -> None:
    with app.extensions["authserver"].session_factory() as session, session.begin():
        for i in range(n):
            audit.record(session, "client.updated", actor="sealer-test", details={"n": i})


def _ticking(sealer, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sealer.tick()
        time.sleep(0.01)
    sealer.wait()


def test_the_sealer_polls_for_its_own_events_and_sweeps_for_others(app, monkeypatch):
    svc = app.extensions["authserver"]
    monkeypatch.setattr(audit.Sealer, "SWEEP_SECONDS", 0.6)
    sealer = audit.Sealer(svc.session_factory, interval=0.02)
    seals: list[int] = []
    seal_now = sealer.seal_now
    monkeypatch.setattr(sealer, "seal_now", lambda: seals.append(1) or seal_now())

    _ticking(sealer, 0.3)  # the first tick seals (nothing known yet); then nothing to do
    assert len(seals) == 1

    _record(app, 3)  # this process inserted unsealed events: sealed at the next interval
    _ticking(sealer, 0.1)
    assert len(seals) == 2 and _unsealed(app) == 0

    _record(app)  # as if another process had inserted it: only the sweep finds it
    monkeypatch.setattr(audit, "_inserted_unsealed", sealer._sealed_upto)
    started = time.monotonic()
    while _unsealed(app):
        assert time.monotonic() - started < 3, "the sweep never sealed it"
        _ticking(sealer, 0.05)
    assert time.monotonic() - started > 0.3  # not at the 0.02 s interval: at the sweep
    assert len(seals) == 3


def test_a_backlog_larger_than_a_batch_is_sealed_tick_after_tick(app, monkeypatch):
    svc = app.extensions["authserver"]
    monkeypatch.setattr(audit.Sealer, "BATCH", 5)
    monkeypatch.setattr(audit.Sealer, "SWEEP_SECONDS", 60)  # the sweep must not do it
    sealer = audit.Sealer(svc.session_factory, interval=0.01)
    _record(app, 23)
    assert wait_for(lambda: (sealer.tick(), sealer.wait(), _unsealed(app) == 0)[-1], timeout=5)
    with svc.session_factory() as session:
        assert audit.verify(session) is None


def test_a_failed_seal_is_retried_at_the_next_interval(app, monkeypatch):
    svc = app.extensions["authserver"]
    monkeypatch.setattr(audit.Sealer, "SWEEP_SECONDS", 60)
    sealer = audit.Sealer(svc.session_factory, interval=0.01)
    _record(app, 2)
    real = audit.seal
    failures = []

    def failing_once(session, batch):
        if not failures:
            failures.append(1)
            from sqlalchemy.exc import OperationalError
            raise OperationalError("seal", {}, Exception("database went away"))
        return real(session, batch=batch)

    monkeypatch.setattr(audit, "seal", failing_once)
    assert wait_for(lambda: (sealer.tick(), sealer.wait(), _unsealed(app) == 0)[-1], timeout=5)
    assert failures == [1]
