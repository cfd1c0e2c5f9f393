"""Admin API, keys and audit (CONTRACT §5): the key set with states, rotation now, and the
audit log newest first with filters and paging."""

from __future__ import annotations

from datetime import timedelta

import pytest

from authserver import clock
from tests.support.factories import admin_token, bearer, make_client


@pytest.fixture
def admin(app):
    return bearer(admin_token(app))


KEY_FIELDS = {"kid", "alg", "kty", "state", "created_at", "activated_at", "retired_at"}


def test_keys_list_shape_and_states(client, admin):
    response = client.get("/admin/keys", headers=admin)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["next_cursor"] is None
    assert all(set(k) == KEY_FIELDS for k in body["items"])
    states = sorted((k["alg"], k["state"]) for k in body["items"])
    assert states == [("ES256", "active"), ("ES256", "pending"),
                      ("RS256", "active"), ("RS256", "pending")]


def test_rotate_now_promotes_pending_and_the_server_signs_with_it(app, client, admin):
    before = {(k["alg"], k["state"]): k["kid"]
              for k in client.get("/admin/keys", headers=admin).get_json()["items"]}
    rotated = client.post("/admin/keys/rotate", headers=admin)
    assert rotated.status_code == 200, rotated.get_json()
    result = rotated.get_json()
    assert result["promoted"]["ES256"] == before[("ES256", "pending")]
    assert result["early_promotion"] is True
    after = client.get("/admin/keys", headers=admin).get_json()["items"]
    by_kid = {k["kid"]: k["state"] for k in after}
    assert by_kid[before[("ES256", "active")]] == "retired"
    assert by_kid[before[("ES256", "pending")]] == "active"
    # this process signs with the promoted key at once; the old token still verifies
    import jwt

    fresh = admin_token(app)
    assert jwt.get_unverified_header(fresh)["kid"] == before[("ES256", "pending")]
    assert client.get("/admin/keys", headers=bearer(fresh)).status_code == 200
    assert client.get("/admin/keys", headers=admin).status_code == 200
    events = client.get("/admin/audit?type=key.rotated", headers=admin).get_json()["items"]
    assert len(events) == 1 and events[0]["actor"].startswith("client:")


EVENT_FIELDS = {"id", "time", "type", "outcome", "actor", "client_id", "ip", "request_id",
                "details"}


def test_audit_newest_first_with_filters_and_paging(app, client, admin):
    made = [make_client(app, client_name=f"c{i}")[0]["client_id"] for i in range(3)]
    all_events = client.get("/admin/audit?limit=200", headers=admin).get_json()
    items = all_events["items"]
    assert all(set(e) == EVENT_FIELDS for e in items)
    seqs = [int(e["id"]) for e in items]
    assert seqs == sorted(seqs, reverse=True)
    assert all(e["time"].endswith("Z") for e in items)

    created = client.get("/admin/audit?type=client.created", headers=admin).get_json()["items"]
    assert [e["client_id"] for e in created][:3] == list(reversed(made))
    one = client.get(f"/admin/audit?client_id={made[1]}", headers=admin).get_json()["items"]
    assert [e["type"] for e in one] == ["client.created"]
    by_system = client.get("/admin/audit?actor=system&type=client.created",
                           headers=admin).get_json()["items"]
    assert {e["client_id"] for e in by_system} >= set(made)

    seen, cursor = [], None
    while True:
        url = "/admin/audit?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=admin).get_json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen[:len(seqs)] == [str(s) for s in seqs]


def test_audit_time_window(app, client, admin):
    clock.travel(-3600)
    make_client(app, client_name="old")
    clock.reset()
    make_client(app, client_name="new")
    since = clock.now().replace(microsecond=0) - timedelta(minutes=5)
    since_text = since.isoformat().replace("+00:00", "Z")
    recent = client.get(f"/admin/audit?type=client.created&since={since_text}",
                        headers=admin).get_json()["items"]
    assert [e["details"]["client_name"] for e in recent] == ["new", "admin client"]
    older = client.get(f"/admin/audit?type=client.created&until={since_text}",
                       headers=admin).get_json()["items"]
    assert "old" in [e["details"]["client_name"] for e in older]
    assert "new" not in [e["details"]["client_name"] for e in older]
    offset = since.isoformat()  # +00:00 form is RFC 3339 too
    assert client.get(f"/admin/audit?since={offset.replace('+', '%2B')}",
                      headers=admin).status_code == 200


@pytest.mark.parametrize("query", ["since=yesterday", "since=2024-01-01",
                                   "until=2024-01-01T00:00:00", "since=2024-13-01T00:00:00Z",
                                   "type=%00", "actor=" + "a" * 201, "limit=0",
                                   "cursor=garbage!", "cursor=YWJj"])
def test_audit_bad_filters_are_400(client, admin, query):
    response = client.get(f"/admin/audit?{query}", headers=admin)
    assert response.status_code == 400, query
    assert response.get_json()["error"] == "invalid_request"
    assert response.headers["Cache-Control"] == "no-store"
