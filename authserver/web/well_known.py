"""Discovery documents and the JWKS, served from memory."""

from __future__ import annotations

from flask import Blueprint, Response

from .. import endpoints
from ..extensions import services
from ..oidc import discovery

bp = Blueprint("well_known", __name__)

DISCOVERY_MAX_AGE = 3600


@bp.get(endpoints.OPENID_CONFIGURATION)
@bp.get(endpoints.OAUTH_METADATA)
def metadata() -> Response:
    svc = services()
    body = svc.extra.get("discovery_body")
    if body is None:
        body = svc.extra["discovery_body"] = discovery.encoded(svc.settings)
    response = Response(body, mimetype="application/json")
    response.headers["Cache-Control"] = f"public, max-age={DISCOVERY_MAX_AGE}"
    return response


@bp.get(endpoints.JWKS)
def jwks() -> Response:
    svc = services()
    response = Response(svc.keyset.jwks_body(), mimetype="application/jwk-set+json")
    # Verifiers may cache this long; a pending key is published at least this long before
    # scheduled rotation lets it sign (keyring/rotation.py).
    response.headers["Cache-Control"] = f"public, max-age={svc.settings.jwks_max_age}"
    return response
