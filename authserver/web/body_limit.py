"""Request size limit (AUTHSERVER_MAX_BODY_BYTES, CONTRACT §4): 413 ``invalid_request`` JSON on
every endpoint, before any view runs.

Flask's MAX_CONTENT_LENGTH alone is not enough: it acts only when a view reads the body, so an
endpoint that ignores its body would answer 200 to a gigabyte, and a login page would answer
with its own HTML error. A declared Content-Length over the limit is refused without reading;
a body without one (chunked) is read here through Werkzeug's limited stream (which raises past
MAX_CONTENT_LENGTH) and cached, so the view parses the same bytes.
"""

from __future__ import annotations

from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge

from ..errors import json_error
from ..extensions import services

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
    if request.headers.get("Transfer-Encoding", "").lower() in ("", "identity"):
        return None  # no body at all
    try:
        request.get_data(cache=True)
    except RequestEntityTooLarge:
        return _too_large()
    return None


def register(app: Flask) -> None:
    app.before_request(_check_size)
