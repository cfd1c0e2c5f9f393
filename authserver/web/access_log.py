"""The access log under granian: one line per request, written by the app itself.

granian's own access logger builds each line through Python's logging (a record, our
redaction filter over the whole message, a formatter): measured at about a ninth of a
token request's CPU under load, and it never sees response headers, so its lines had no
request id. This WSGI wrapper writes the same line directly, with the request id, in the
server's log format (``AUTHSERVER_LOG_FORMAT``: text, or JSON shaped as logs.JsonFormatter's).
As ever: the path only, never the query string (it can hold codes: RFC 6749 §4.1.2), and the
path itself passes the redaction patterns (a client may put a token anywhere).
gunicorn writes its own access log (serve.JsonLogger.access), so only granian's target wraps
the app with this (wsgi.granian_app).
"""

from __future__ import annotations

import json
import os
import sys
import time

from .. import endpoints
from ..logs import log_time, redact

LOGGER = "granian.access"
# Paths known to hold nothing to redact (the busiest ones): written as they are.
_PLAIN_PATHS = frozenset(v for k, v in vars(endpoints).items() if k.isupper()) | {
    "/healthz", "/readyz", "/metrics"}


class AccessLog:
    def __init__(self, app, log_format: str = "text", stream=None):
        self._app = app
        self._json = log_format == "json"
        self._stream = stream  # None: sys.stderr at each write (it may be replaced)

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        seen: list = []

        def capture(status, headers, exc_info=None):
            seen[:] = (status, headers)
            return start_response(status, headers, exc_info)

        body = self._app(environ, capture)
        try:
            self._write(environ, seen, body, time.perf_counter() - started)
        except Exception:  # noqa: BLE001 - a log line never fails the request
            pass
        return body

    def _write(self, environ, seen: list, body, seconds: float) -> None:
        status, headers = seen if seen else ("-", [])
        code = status.split(" ", 1)[0]
        request_id = size = None
        for name, value in headers:
            lowered = name.lower()
            if lowered == "x-request-id":
                request_id = value
            elif lowered == "content-length":
                size = int(value) if value.isdigit() else None
        path = environ.get("PATH_INFO", "")
        if path not in _PLAIN_PATHS:
            path = redact(path)
        addr = environ.get("REMOTE_ADDR") or "-"
        method = environ.get("REQUEST_METHOD", "-")
        duration_ms = round(seconds * 1000, 3)
        message = f'{addr} "{method} {path}" {code} {duration_ms:.1f}ms'
        now = time.time()
        if self._json:
            line = json.dumps({
                "time": log_time(now),
                "level": "INFO", "logger": LOGGER, "message": message,
                "request_id": request_id, "process": os.getpid(),
                "http": {"remote_addr": addr, "method": method, "path": path,
                         "status": int(code) if code.isdigit() else code, "bytes": size,
                         "duration_ms": duration_ms},
            }, separators=(",", ":"))
        else:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
            line = (f"{stamp},{int(now * 1000) % 1000:03d} INFO {LOGGER} {message} "
                    f"request_id={request_id or '-'}")
        (self._stream or sys.stderr).write(line + "\n")
