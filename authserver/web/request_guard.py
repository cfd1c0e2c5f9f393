"""Checks on every request before any view runs: the transport, the size limit and NUL
characters.

Transport: credentials, tokens, codes and passwords travel over TLS only (RFC 6749 §3.1 and
§3.2, RFC 6750 §5.3). The rule is Authlib's, which its own endpoints (and the fast path) apply:
https, or plain http to a loopback host (development); behind trusted proxies their
X-Forwarded-Proto says which (ProxyFix). Anything else gets 400 ``invalid_request`` before it
is read — the admin API and the sign-in form included, which Authlib does not see. Health,
readiness, metrics, JWKS and discovery carry no secret and stay open to plain HTTP (a
balancer or Prometheus probes them directly).

Size (AUTHSERVER_MAX_BODY_BYTES, CONTRACT §4): 413 ``invalid_request`` JSON on every endpoint.

Flask's MAX_CONTENT_LENGTH alone is not enough: it acts only when a view reads the body, so an
endpoint that ignores its body would answer 200 to a gigabyte, and a login page would answer
with its own HTML error. A declared Content-Length over the limit is refused without reading;
a body without one (chunked) is read here, at most one byte past the limit, and handed on as
an ordinary body of known length. (Werkzeug's own limit on such streams stops reading at
MAX_CONTENT_LENGTH without an error: the view would silently see a truncated body.)
"""

from __future__ import annotations

import functools
import io
import re

from authlib.common.security import is_secure_transport
from flask import Flask, request

from ..errors import json_error
from ..extensions import services

ADMIN_BLUEPRINT = "admin_api"
PLAIN_HTTP_BLUEPRINTS = frozenset({"ops", "well_known"})  # no secret in or out
HTTPS_REQUIRED = "use https: this endpoint takes requests over TLS only"

# NUL (U+0000) is valid in no parameter we take (RFC 6749 Appendix A allows %x20-7E and
# UNICODECHARNOCRLF without it), and PostgreSQL refuses it in text: without this check a NUL in
# a client_id or username became a DataError (500) on PostgreSQL while SQLite accepted it.
_JSON_NUL = re.compile(rb"\\u0000", re.IGNORECASE)

_DESCRIPTION = "request body too large"


def _too_large():
    response = json_error(413, "invalid_request", _DESCRIPTION)
    response.headers["Connection"] = "close"  # the unread rest of the body is not ours to drain
    return response


def _check_size():
    limit = services().settings.max_body_bytes
    length = request.content_length
    if length is not None:
        return _too_large() if length > limit else None
    environ = request.environ
    if not environ.get("wsgi.input_terminated") or "HTTP_TRANSFER_ENCODING" not in environ:
        return None  # no body at all (Werkzeug reads nothing without a length)
    body = _read_at_most(environ["wsgi.input"], limit + 1)
    if len(body) > limit:
        return _too_large()
    # Nothing has read the stream yet (request.stream is built on first use): the view sees
    # the same bytes as a plain body with a length.
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    del environ["HTTP_TRANSFER_ENCODING"]
    return None


def _read_at_most(stream, size: int) -> bytes:
    chunks, total = [], 0
    while total < size:
        chunk = stream.read(size - total)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


_RAW_NUL = re.compile(rb"\x00|%00|\\u0000", re.IGNORECASE)


def _has_nul() -> bool:
    if "\x00" in request.path:
        return True
    # Fast path: without a raw NUL, "%00" or "\u0000" in the query or the (size-checked)
    # body no decoded value can hold one; the body read here is cached for the view.
    if not (_RAW_NUL.search(request.query_string)
            or _RAW_NUL.search(request.get_data(cache=True))):
        return False
    values = list(request.args.values())
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        values += request.form.values()
    if any("\x00" in v for v in values):
        return True
    return request.is_json and bool(_JSON_NUL.search(request.get_data(cache=True)))


def _check_nul():
    # The admin API has its own, RFC 7591-shaped answers to NUL (admin/schemas.py, ids).
    if request.blueprint != ADMIN_BLUEPRINT and _has_nul():
        return json_error(400, "invalid_request", "NUL characters are not allowed")
    return None


def secure(scheme: str, host: str) -> bool:
    """The transport rule (module doc), for this module and the fast path."""
    return scheme == "https" or _loopback(host)


@functools.lru_cache(maxsize=256)  # the Host header: a few values, parsed once each
def _loopback(host: str) -> bool:
    return is_secure_transport(f"http://{host}/")


def _check_transport():
    if (request.blueprint is None or request.blueprint in PLAIN_HTTP_BLUEPRINTS
            or secure(request.scheme, request.host)):
        return None  # not a route of ours (404, static files), open, https, or loopback
    return json_error(400, "invalid_request", HTTPS_REQUIRED)


def register(app: Flask) -> None:
    app.before_request(_check_transport)
    app.before_request(_check_size)
    app.before_request(_check_nul)
