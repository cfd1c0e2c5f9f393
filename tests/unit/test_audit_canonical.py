"""The hashed form of an audit event (audit.canonical) is written out directly for speed; it
must stay byte for byte the generic encoder's output, over which every sealed chain was
hashed (a difference would make `authserver audit verify` report intact events as altered)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authserver import audit

texts = st.none() | st.text(max_size=40)


def _generic(ev: dict, seq: int) -> bytes:
    body = {
        "seq": seq, "time": ev["time"].astimezone(UTC).isoformat(timespec="microseconds"),
        "type": ev["type"], "outcome": ev["outcome"], "actor": ev["actor"],
        "client_id": ev["client_id"], "ip": ev["ip"], "request_id": ev["request_id"],
        "details": ev["details"],
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(actor=st.text(max_size=40), client_id=texts, ip=texts, request_id=texts,
       type_=st.text(max_size=20), outcome=st.text(max_size=10),
       details=st.dictionaries(st.text(max_size=10), st.none() | st.integers() | st.text(),
                               max_size=4),
       when=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
       offset_minutes=st.integers(min_value=-14 * 60, max_value=14 * 60),
       seq=st.integers(min_value=1, max_value=2**62))
def test_canonical_is_the_generic_encoding(actor, client_id, ip, request_id, type_, outcome,
                                           details, when, offset_minutes, seq):
    zone = timezone(timedelta(minutes=offset_minutes))
    ev = {"time": when.replace(tzinfo=UTC).astimezone(zone), "type": type_,
          "outcome": outcome, "actor": actor, "client_id": client_id, "ip": ip,
          "request_id": request_id,
          "details": json.dumps(details, sort_keys=True, separators=(",", ":"))}
    assert audit.canonical(ev, seq) == _generic(ev, seq)
    # The same instant read back in another zone hashes the same.
    assert audit.canonical({**ev, "time": ev["time"].astimezone(UTC)}, seq) == \
        audit.canonical(ev, seq)
