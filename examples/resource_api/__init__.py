"""An example resource API protected by `authserver.verifier`, with no database of its own.

    RESOURCE_ISSUER=<issuer> RESOURCE_AUDIENCE=<aud> flask --app examples.resource_api run --port P

`app` is built on first access (PEP 562 module __getattr__), so importing this package for
`create_app(...)` in tests needs no environment. Nothing is fetched until the first request.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, jsonify

from authserver.verifier import Verifier, current_claims, require_scope

ORDERS = [
    {"id": "ord-1001", "item": "keyboard", "quantity": 1},
    {"id": "ord-1002", "item": "monitor cable", "quantity": 2},
]


def create_app(issuer: str | None = None, audience: str | None = None,
               verifier: Any = None) -> Flask:
    """The API for `issuer`/`audience` (default: RESOURCE_ISSUER / RESOURCE_AUDIENCE), or
    guarded by the given verifier (e.g. an IntrospectionVerifier)."""
    if verifier is None:
        issuer = issuer or os.environ.get("RESOURCE_ISSUER")
        audience = audience or os.environ.get("RESOURCE_AUDIENCE")
        if not issuer or not audience:
            raise RuntimeError("set RESOURCE_ISSUER and RESOURCE_AUDIENCE")
        verifier = Verifier(issuer=issuer, audience=audience)
    app = Flask(__name__)

    @app.get("/api/whoami")
    @require_scope(verifier)
    def whoami():
        return jsonify(current_claims())  # the verified claims as top-level members

    @app.get("/api/orders")
    @require_scope(verifier, "orders:read")
    def orders():
        return jsonify(ORDERS)

    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        globals()["app"] = app = create_app()
        return app
    raise AttributeError(name)
