"""Operations: liveness, readiness, metrics."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from ..db import reading, retry_transient
from ..extensions import services

bp = Blueprint("ops", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    svc = services()
    checks = {}
    def ping() -> None:
        with reading(svc.engine) as conn:  # never queued behind SQLite's writers
            conn.execute(text("SELECT 1"))

    try:
        retry_transient(ping)  # one dropped pooled connection is not "unready"
        checks["database"] = "ok"
    except Exception as exc:  # report, never raise: readiness is a yes/no for the balancer
        log.warning("readiness: database unreachable (%s)", type(exc).__name__)
        checks["database"] = "unreachable"
    try:
        snapshot = retry_transient(svc.keyset.snapshot)
        checks["keys"] = "ok" if snapshot.signing else "missing"
    except Exception as exc:
        log.warning("readiness: keys not loaded (%s)", type(exc).__name__)
        checks["keys"] = "missing"
    if svc.settings.audit_relay_socket:  # under `authserver serve`: tokens need the relay
        from ..audit_relay import answers

        relay_ok = answers(svc.settings.audit_relay_socket)
        checks["audit_relay"] = "ok" if relay_ok else "unreachable"
        if not relay_ok:
            log.warning("readiness: audit relay unreachable")
    ready = all(v == "ok" for v in checks.values())
    response = jsonify(status="ready" if ready else "unavailable", checks=checks)
    response.status_code = 200 if ready else 503
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/metrics")
def metrics() -> Response:
    from .. import clock
    from ..metrics import exposition

    try:
        active_since = services().keyset.snapshot().active_since
    except Exception as exc:  # a scrape still answers; /readyz reports the key problem
        log.warning("metrics: key set unavailable (%s)", type(exc).__name__)
        active_since = None
    body, content_type = exposition(active_since, clock.timestamp())
    return Response(body, content_type=content_type)
