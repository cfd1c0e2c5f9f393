"""A real `authserver serve` as operators run it: Prometheus metrics aggregated over several
gunicorn workers, JSON logs with request ids and no secrets, graceful shutdown on SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from authserver import endpoints
from authserver.metrics import RequestTally
from tests.support import cli


def _samples(server) -> dict[tuple, float]:
    text = server.get("/metrics").text
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def test_metrics_are_aggregated_over_workers_and_count_tokens_errors_and_key_age(
        live_server, settings, tmp_path):
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    # a previous run's samples: emptied at start, never served
    (metrics_dir / "counter_999999.db").write_bytes(b"\0" * 64)
    server = live_server(settings=settings.replace(log_format="json"), workers=2,
                         extra_env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
    client_id, secret = cli.client_credentials_client(settings, "metrics")
    before = _samples(server)
    health_key = ("authserver_http_requests_total",
                  (("endpoint", "/healthz"), ("method", "GET"), ("status", "200")))

    def hit(_):
        # a new connection each time, so both workers take requests
        return requests.get(server.url + "/healthz", timeout=10,
                            headers={"Connection": "close"}).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(hit, range(120))) == {200}
    tokens = 7
    for _ in range(tokens):
        r = server.post(endpoints.TOKEN, data={"grant_type": "client_credentials"},
                        auth=(client_id, secret))
        assert r.status_code == 200
    bad = server.post(endpoints.TOKEN, data={"grant_type": "client_credentials"},
                      auth=(client_id, "wrong"))
    assert bad.status_code == 401

    # two workers' files and the audit relay's (it counts issuances once they are durable)
    process_files = {p.name.split("_", 1)[1] for p in metrics_dir.glob("counter_*.db")}
    assert "999999.db" not in process_files and len(process_files) == 3, process_files
    # whichever worker answers the scrape, it reports every worker's requests, once each
    # worker has folded its fast-path tally into the shared files (metrics.RequestTally)
    time.sleep(2 * RequestTally.FLUSH_SECONDS)
    for _ in range(6):
        after = _samples(server)
        assert after[health_key] - before.get(health_key, 0) == 120
    issued = after[("authserver_tokens_issued_total",
                    (("client_id", client_id), ("grant_type", "client_credentials")))]
    assert issued == tokens
    assert after[("authserver_errors_total", (("error", "invalid_client"),))] >= 1
    age = after[("authserver_signing_key_age_seconds", ())]
    assert 0 <= age < 120
    latency = [k for k in after if k[0] == "authserver_http_request_duration_seconds_count"
               and ("endpoint", "/oauth2/token") in k[1]]
    assert latency and after[latency[0]] >= tokens + 1


def test_json_logs_carry_request_ids_and_no_secrets(live_server, settings):
    server = live_server(settings=settings.replace(log_format="json"))
    client_id, secret = cli.client_credentials_client(settings, "metrics")
    r = server.post(endpoints.TOKEN, data={"grant_type": "client_credentials"},
                    auth=(client_id, secret), headers={"X-Request-ID": "req-token-1"})
    assert r.status_code == 200
    token = r.json()["access_token"]
    server.get("/healthz?code=SECRETCODE123&access_token=" + token,
               headers={"X-Request-ID": "req-health-1"})
    time.sleep(0.3)
    log = server.log()
    entries = [json.loads(line) for line in log.splitlines() if line.strip()]  # all JSON
    assert secret not in log and token not in log and "SECRETCODE123" not in log
    access = [e for e in entries if e["logger"] == "gunicorn.access"]
    by_id = {e["request_id"]: e for e in access}
    assert by_id["req-health-1"]["http"]["path"] == "/healthz"
    assert by_id["req-token-1"]["http"]["status"] == 200
    issued = [e for e in entries if e["logger"] == "authserver.audit"
              and json.loads(e["message"])["type"] == "token.issued"]
    assert [e["request_id"] for e in issued] == ["req-token-1"]


@pytest.mark.parametrize("kind", ["gunicorn", "granian"])
def test_sigterm_lets_an_in_flight_request_finish(live_server, settings, kind):
    server = live_server(workers=1, threads=2, server=kind)
    body = b"grant_type=client_credentials&scope=read"
    head = (f"POST {endpoints.TOKEN} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        sock.sendall(head + body[:10])  # the request is in flight: its body is still coming
        time.sleep(0.5)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(1.5)
        # meanwhile the server has stopped taking new connections
        refused = False
        try:
            requests.get(server.url + "/healthz", timeout=2)
        except requests.RequestException:
            refused = True
        assert refused
        sock.sendall(body[10:])
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    status_line = response.split(b"\r\n", 1)[0]
    assert status_line.upper() == b"HTTP/1.1 401 UNAUTHORIZED", response[:300]
    assert b'"invalid_client"' in response
    assert server.process.wait(timeout=25) == 0
