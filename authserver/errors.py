"""The one place errors become responses.

APIs answer RFC 6749-style JSON ``{"error", "error_description"}``; anything unexpected becomes
``{"error": "server_error"}`` with the request id, and the server log gets the exception's type
and where it happened, never its message (which may hold SQL, parameters or secrets).
"""

from __future__ import annotations

import logging
import traceback

from flask import Flask, Response, g, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger("authserver.errors")

# HTTP status -> RFC-style error code for generic HTTP failures.
_HTTP_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "invalid_request",
    415: "invalid_request",
    429: "too_many_requests",
}

_DESCRIPTIONS = {
    404: "no such endpoint",
    405: "method not allowed",
    413: "request body too large",
    415: "unsupported media type",
}


def json_error(status: int, error: str, description: str | None = None,
               headers: dict | None = None, **extra) -> Response:
    body = {"error": error}
    if description:
        body["error_description"] = description
    body.update(extra)
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if isinstance(exc.response, Response):  # an explicit response: keep it
        return exc.response
    code = _HTTP_CODES.get(status, "invalid_request" if status < 500 else "server_error")
    response = json_error(status, code, _DESCRIPTIONS.get(status))
    for name, value in exc.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


def where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/authserver/" in f.filename] or frames
    if not ours:
        return "?"
    last = ours[-1]
    return f"{last.filename.rsplit('/authserver/', 1)[-1]}:{last.lineno} in {last.name}"


def failure(exc: Exception, request_id: str | None) -> tuple[int, dict]:
    """Log an exception no view handled; the status and body to answer (Flask's handlers
    below and web/fast_path.py). The audit log refusing a write, or the database unreachable
    (its connection lost or timed out: db.is_transient), is 503 — worth retrying, and what a
    balancer reads as this instance's trouble; the rest 500."""
    from .audit_writer import AuditUnavailable
    from .db import is_transient

    if isinstance(exc, AuditUnavailable):
        log.error("audit log unavailable (%s) request_id=%s", exc, request_id)
        error, description, status = "temporarily_unavailable", "try again later", 503
    elif is_transient(exc):
        log.error("database unavailable (%s at %s) request_id=%s", type(exc).__name__,
                  where(exc), request_id)
        error, description, status = "temporarily_unavailable", "try again later", 503
    else:
        log.error("unhandled %s at %s request_id=%s", type(exc).__name__, where(exc),
                  request_id)
        error, description, status = "server_error", "internal error", 500
    return status, {"error": error, "error_description": description, "request_id": request_id}


def _failure_response(exc: Exception) -> Response:
    status, body = failure(exc, g.get("request_id"))
    return json_error(status, body.pop("error"), body.pop("error_description"), **body)


def register(app: Flask) -> None:
    from .audit_writer import AuditUnavailable

    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(AuditUnavailable, _failure_response)
    app.register_error_handler(Exception, _failure_response)
