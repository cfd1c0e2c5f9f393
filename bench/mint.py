"""Mint single-use credentials for the refresh and code-exchange benchmarks.

    python bench/mint.py CLIENT_ID N OUT_DIR     (settings from AUTHSERVER_* as for the server)

Uses the server's own services (the same code paths the browser flow uses) to create a user,
a browser session, N authorization codes (PKCE S256 with one fixed verifier) and N refresh
tokens (one family each), and writes one form body per line to OUT_DIR/code.txt and
OUT_DIR/refresh.txt. wrk then uses each line once.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import sys
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from authserver import create_app  # noqa: E402
from authserver.admin.users import create_user  # noqa: E402
from authserver.db import transaction  # noqa: E402
from authserver.models import Client  # noqa: E402
from authserver.oauth import authorization_code, refresh  # noqa: E402
from authserver.oauth.authorization_request import AuthorizationRequest  # noqa: E402
from authserver.oidc import sessions  # noqa: E402

VERIFIER = "bench-" + "v" * 60


def main() -> None:
    client_id, n, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    app = create_app()
    svc = app.extensions["authserver"]
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()
    with app.app_context(), svc.session_factory() as db:
        user = create_user(db, {"username": f"bench-{secrets.token_hex(4)}",
                                "password": secrets.token_urlsafe(16)}, actor="system")
        client = db.get(Client, client_id)
        redirect_uri = client.get_list("redirect_uris")[0]
        with transaction(db):
            _, record = sessions.create(db, svc.digester, user, ttl=3600, ip=None)
        signed = sessions.SignedIn(record=record, user=user)
        req = AuthorizationRequest(client=client, redirect_uri=redirect_uri, state=None,
                                   scope="openid", audience=svc.settings.issuer,
                                   code_challenge=challenge, code_challenge_method="S256")
        codes, refreshes = [], []
        for start in range(0, n, 500):
            with transaction(db):
                for _ in range(min(500, n - start)):
                    codes.append(authorization_code.issue_code(db, svc, req, signed))
                    family = refresh.start_family(db, client, user, scope="openid",
                                                  audience=None, auth_time=signed.auth_time,
                                                  sid=signed.sid)
                    refreshes.append(refresh.issue(db, svc, client, family, "openid"))
    (out / "code.txt").write_text("".join(
        urlencode({"grant_type": "authorization_code", "code": c, "redirect_uri": redirect_uri,
                   "code_verifier": VERIFIER}) + "\n" for c in codes))
    (out / "refresh.txt").write_text("".join(
        urlencode({"grant_type": "refresh_token", "refresh_token": r}) + "\n"
        for r in refreshes))


if __name__ == "__main__":
    main()
