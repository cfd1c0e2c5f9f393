"""The key lifecycle: pending → active → retired → purged, on a movable clock, with several
instances on one database."""

import json
import threading
import time

import pytest
from sqlalchemy import func, select

from authserver import clock, create_app
from authserver.admin.keys import list_keys, rotate_now
from authserver.models import AuditEvent, SigningKey

DAY = 86400


def _svc(app):
    return app.extensions["authserver"]


def _states(app):
    with _svc(app).session_factory() as session:
        return {(k["alg"], k["state"]): k["kid"] for k in list_keys(session)}, list_keys(session)


def _events(app, type_):
    with _svc(app).session_factory() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.type == type_)).all()
        return [json.loads(r.details) for r in rows]


def _jwks_kids(client):
    return {k["kid"] for k in client.get("/.well-known/jwks.json").get_json()["keys"]}


def test_first_start_has_one_active_and_one_pending_key_per_algorithm(app):
    _svc(app).keyset.snapshot()
    by_state, items = _states(app)
    assert len(items) == 4
    assert set(by_state) == {("RS256", "active"), ("RS256", "pending"),
                             ("ES256", "active"), ("ES256", "pending")}


def test_manual_rotation_promotes_pending_retires_active_and_publishes_a_new_pending(app, client):
    svc = _svc(app)
    svc.keyset.snapshot()
    before, _ = _states(app)
    with svc.session_factory() as session:
        result = rotate_now(session, svc.sealer, svc.settings, actor="system")
    after, items = _states(app)
    for alg in ("RS256", "ES256"):
        assert after[(alg, "active")] == before[(alg, "pending")] == result["promoted"][alg]
        assert after[(alg, "retired")] == before[(alg, "active")]
        assert after[(alg, "pending")] not in before.values()
    svc.keyset.refresh(force=True)
    assert svc.keyset.signing_key("RS256").kid == after[("RS256", "active")]
    # retired keys stay published; so do the new pending ones
    assert _jwks_kids(client) == {k["kid"] for k in items}
    [event] = _events(app, "key.rotated")
    assert event["trigger"] == "manual" and event["early_promotion"] is True


@pytest.mark.settings(key_rotation_days=30, jwks_max_age=300)
def test_scheduled_rotation_happens_when_due_and_not_before(app):
    svc = _svc(app)
    first = svc.keyset.signing_key("ES256").kid
    clock.travel(29 * DAY)
    svc.keyset.refresh(force=True)
    assert svc.keyset.signing_key("ES256").kid == first
    assert _events(app, "key.rotated") == []
    clock.travel(2 * DAY)
    svc.keyset.refresh(force=True)
    assert svc.keyset.signing_key("ES256").kid != first
    [event] = _events(app, "key.rotated")
    assert event["trigger"] == "scheduled" and event["early_promotion"] is False


@pytest.mark.settings(key_rotation_days=1, jwks_max_age=2 * DAY)
def test_scheduled_rotation_keeps_the_pre_publication_window(app):
    """The pending key must have been in the JWKS a full cache lifetime before it signs."""
    svc = _svc(app)
    first = svc.keyset.signing_key("RS256").kid
    clock.travel(1.5 * DAY)  # rotation due, but the pending key is younger than 2 days
    svc.keyset.refresh(force=True)
    assert svc.keyset.signing_key("RS256").kid == first
    clock.travel(1 * DAY)
    svc.keyset.refresh(force=True)
    assert svc.keyset.signing_key("RS256").kid != first


@pytest.mark.settings(key_rotation_days=0)
def test_rotation_schedule_can_be_turned_off(app):
    svc = _svc(app)
    first = svc.keyset.signing_key("RS256").kid
    clock.travel(400 * DAY)
    svc.keyset.refresh(force=True)
    assert svc.keyset.signing_key("RS256").kid == first


@pytest.mark.settings(access_token_ttl=600, id_token_ttl=600, max_client_token_ttl=3600)
def test_retired_key_stays_published_until_its_tokens_expired_then_is_purged(app, client):
    svc = _svc(app)
    old = svc.keyset.signing_key("ES256").kid
    with svc.session_factory() as session:
        rotate_now(session, svc.sealer, svc.settings, actor="system")
    clock.travel(3600 - 10)  # a token signed just before rotation may still be valid
    svc.keyset.refresh(force=True)
    assert old in _jwks_kids(client)
    clock.travel(3600)
    svc.keyset.refresh(force=True)
    assert old not in _jwks_kids(client)
    with svc.session_factory() as session:
        assert session.get(SigningKey, old) is None
    [purged] = _events(app, "key.purged")
    assert old in purged["kids"]


def test_another_instance_signs_with_the_promoted_key_within_five_seconds(app, settings):
    other = create_app(settings)  # a second instance: own engine, own key cache
    try:
        svc, osvc = _svc(app), _svc(other)
        osvc.keyset.snapshot()
        with svc.session_factory() as session:
            promoted = rotate_now(session, svc.sealer, svc.settings, actor="system")["promoted"]
        started = time.monotonic()
        other_client = other.test_client()
        while True:
            other_client.get("/healthz")  # any request lets the instance re-check its keys
            if osvc.keyset.signing_key("ES256").kid == promoted["ES256"]:
                break
            assert time.monotonic() - started < 5, "other instance still signs with the old key"
            time.sleep(0.05)
    finally:
        _svc(other).close()


@pytest.mark.settings(key_rotation_days=30)
def test_two_instances_noticing_a_due_rotation_rotate_exactly_once(app, settings):
    instances = [app, create_app(settings), create_app(settings)]
    try:
        for inst in instances:
            _svc(inst).keyset.snapshot()
        clock.travel(31 * DAY)
        barrier = threading.Barrier(len(instances))
        errors = []

        def tick(inst):
            try:
                barrier.wait()
                _svc(inst).keyset.refresh(force=True)
            except Exception as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=tick, args=(i,)) for i in instances]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(_events(app, "key.rotated")) == 1
        with _svc(app).session_factory() as session:
            counts = dict(session.execute(
                select(SigningKey.state, func.count()).group_by(SigningKey.state)).all())
        assert counts == {"active": 2, "pending": 2, "retired": 2}
        kids = {_svc(i).keyset.signing_key("RS256").kid for i in instances}
        assert len(kids) == 1  # every instance signs with the same promoted key
    finally:
        for inst in instances[1:]:
            _svc(inst).close()
