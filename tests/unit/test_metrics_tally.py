"""The fast path's tally (metrics.RequestTally) folds requests and latencies into the same
Prometheus series that direct ``inc``/``observe`` calls give: it writes through the
histogram child's internals, so a prometheus_client upgrade that changes them fails here."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from authserver import metrics


def _series(registry) -> dict[str, float]:
    lines = generate_latest(registry).decode().splitlines()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in lines if line and not line.startswith("#") and "_created" not in line}


def test_a_flushed_tally_is_what_direct_observations_give(monkeypatch):
    registries = []
    for _ in range(2):
        registry = CollectorRegistry()
        registries.append((registry,
                           Counter("req", "r", ["endpoint", "method", "status"],
                                   registry=registry),
                           Histogram("lat", "l", ["endpoint"], buckets=metrics.LATENCY_BUCKETS,
                                     registry=registry)))
    (direct, d_req, d_lat), (tallied, t_req, t_lat) = registries
    monkeypatch.setattr(metrics, "REQUESTS", t_req)
    monkeypatch.setattr(metrics, "LATENCY", t_lat)
    tally = metrics.RequestTally()
    rng = random.Random(7)
    for _ in range(500):
        rule = rng.choice(["/oauth2/token", "/oauth2/introspect"])
        status = rng.choice([200, 200, 500])
        # Bucket edges included: a value equal to a bound falls in that bound's bucket.
        seconds = rng.choice([0.001, 0.01, 2.5, 3.0, rng.random() * 0.2])
        d_req.labels(rule, "POST", str(status)).inc()
        d_lat.labels(rule).observe(seconds)
        tally.add(rule, "POST", status, seconds)
    tally.flush()
    got, want = _series(tallied), _series(direct)
    assert got.keys() == want.keys()
    for name, value in want.items():
        assert abs(got[name] - value) < 1e-9, name
    tally.flush()  # nothing pending: nothing added twice
    assert _series(tallied) == got
