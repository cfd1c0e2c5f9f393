"""The access log the app writes under granian (web/access_log.py), in both formats."""

from __future__ import annotations

import io
import json

from werkzeug.test import Client
from werkzeug.wrappers import Response

from authserver.web.access_log import AccessLog

PEER = {"REMOTE_ADDR": "127.0.0.1"}
JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


def _app(environ, start_response):
    return Response("hello", status=201, headers={"X-Request-ID": "rid-1"})(
        environ, start_response)


def test_text_line_has_the_request_not_its_query_nor_a_token_in_its_path():
    stream = io.StringIO()
    client = Client(AccessLog(_app, "text", stream))
    response = client.post("/oauth2/token?code=SECRETCODE", data={"client_secret": "s3cret"},
                           environ_base=PEER)
    assert (response.status_code, response.get_data()) == (201, b"hello")  # passed through
    client.get("/" + JWT, environ_base=PEER)
    first, second = stream.getvalue().splitlines()
    assert ' INFO granian.access 127.0.0.1 "POST /oauth2/token" 201 ' in first
    assert first.endswith(" request_id=rid-1")
    assert "SECRETCODE" not in first and "s3cret" not in first
    assert JWT not in second and "[redacted-jwt]" in second


def test_json_line_is_shaped_as_the_servers_json_logs():
    stream = io.StringIO()
    Client(AccessLog(_app, "json", stream)).get("/healthz?access_token=" + JWT,
                                                environ_base=PEER)
    entry = json.loads(stream.getvalue())
    assert entry["logger"] == "granian.access" and entry["level"] == "INFO"
    assert entry["request_id"] == "rid-1" and entry["time"].endswith("Z")
    assert entry["http"] == {"remote_addr": "127.0.0.1", "method": "GET", "path": "/healthz",
                             "status": 201, "bytes": 5,
                             "duration_ms": entry["http"]["duration_ms"]}
    assert JWT not in stream.getvalue()
