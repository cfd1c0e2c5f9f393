"""`authserver serve --server granian`: the faster server (README, Performance) with what
operators rely on from gunicorn: tokens across workers, metrics aggregated over workers,
JSON logs without query strings or secrets. (Graceful SIGTERM: test_operations.py.)"""

from __future__ import annotations

import json
import time

import jwt
import requests
from prometheus_client.parser import text_string_to_metric_families

from authserver import endpoints
from tests.support import cli


def test_tokens_and_metrics_over_two_granian_workers(live_server, settings, tmp_path):
    metrics_dir = tmp_path / "prom"
    server = live_server(server="granian", workers=2,
                         extra_env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
    client_id, secret = cli.client_credentials_client(settings, "granian")
    jwks = jwt.PyJWKSet.from_dict(server.get("/.well-known/jwks.json").json())
    tokens = 12
    for _ in range(tokens):  # new connections: both workers answer some
        r = requests.post(server.url + endpoints.TOKEN, auth=(client_id, secret),
                          data={"grant_type": "client_credentials"},
                          headers={"Connection": "close"}, timeout=10)
        assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
        token = r.json()["access_token"]
        key = jwks[jwt.get_unverified_header(token)["kid"]]
        claims = jwt.decode(token, key.key, algorithms=[key.algorithm_name],
                            audience=server.url, issuer=server.url)
        assert claims["client_id"] == client_id

    # one file per worker, and the audit relay's (it counts issuances once durable)
    assert len(list(metrics_dir.glob("counter_*.db"))) == 3
    for _ in range(4):  # whichever worker answers reports both workers' issuances
        families = text_string_to_metric_families(server.get("/metrics").text)
        issued = {tuple(sorted(s.labels.items())): s.value for f in families
                  for s in f.samples if s.name == "authserver_tokens_issued_total"}
        assert issued[(("client_id", client_id), ("grant_type", "client_credentials"))] == tokens


def test_granian_logs_are_json_without_query_strings_or_secrets(live_server, settings):
    server = live_server(server="granian", settings=settings.replace(log_format="json"))
    client_id, secret = cli.client_credentials_client(settings, "granian")
    r = server.post(endpoints.TOKEN, data={"grant_type": "client_credentials"},
                    auth=(client_id, secret))
    token = r.json()["access_token"]
    assert server.get("/healthz?code=SECRETCODE123&access_token=" + token).status_code == 200
    assert server.get("/" + token).status_code == 404  # a token in the path itself
    time.sleep(0.5)
    log = server.log()
    entries = [json.loads(line) for line in log.splitlines() if line.strip()]  # all JSON
    assert secret not in log and token not in log and "SECRETCODE123" not in log
    access = [e for e in entries if e["logger"] == "granian.access"]
    messages = [e["message"] for e in access]
    assert any('"GET /healthz"' in m and " 200 " in m for m in messages), messages
    assert any(" 404 " in m and "[redacted-jwt]" in m for m in messages), messages
    # Written by the app (web/access_log.py): each line carries the answer's request id.
    issued = [e for e in access if e["http"]["path"] == endpoints.TOKEN]
    assert len(issued) == 1 and issued[0]["request_id"] == r.headers["X-Request-ID"]
    assert issued[0]["http"]["method"] == "POST" and issued[0]["http"]["status"] == 200
    assert issued[0]["http"]["bytes"] == len(r.content)
