"""The audit log line (audit._log_line) is the event's public form as JSON, for any field
values: it is written out directly for speed, so it must parse to exactly what the generic
encoder would have produced."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from authserver import audit

texts = st.none() | st.text(max_size=40)


@given(actor=st.text(max_size=40), client_id=texts, ip=texts, request_id=texts,
       details=st.dictionaries(st.text(max_size=10), st.none() | st.integers() | st.text(),
                               max_size=4),
       when=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_the_line_is_the_public_event(actor, client_id, ip, request_id, details, when):
    ev = {"time": when.replace(tzinfo=UTC), "type": "token.issued", "outcome": "success",
          "actor": actor, "client_id": client_id, "ip": ip, "request_id": request_id,
          "details": json.dumps(details, sort_keys=True, separators=(",", ":"))}
    line = audit._log_line(ev)
    assert "\n" not in line
    assert json.loads(line) == audit._public(ev)
    assert list(json.loads(line)) == sorted(json.loads(line))  # keys in order, as before
