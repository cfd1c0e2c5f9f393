"""No secret value in any log or audit row (issue 5, ARCHITECTURE principle 7).

A realistic sequence — client credentials, introspection, revocation, a failed and a good
sign-in, consent, code exchange, refresh, refresh reuse, UserInfo, logout — runs against a real
`authserver serve` with AUTHSERVER_LOG_LEVEL=DEBUG (Authlib logs issued tokens at DEBUG: its
logger stays at INFO and records are redacted). Then the server's whole log, the in-process
Python log records, and every column of every audit row are searched for each secret the
client side saw: client secrets, passwords, codes, PKCE verifiers, access/refresh/ID tokens,
the session cookie, CSRF tokens.
"""

from __future__ import annotations

import logging
import secrets
from urllib.parse import parse_qs, urlsplit

import requests
from sqlalchemy import select

from authserver import endpoints
from authserver.extensions import services
from authserver.models import AuditEvent
from tests.support.browser import (
    REDIRECT_URI,
    hidden_fields,
    make_person,
    make_rp,
    pkce_pair,
)
from tests.support.factories import basic_auth, make_client

PASSWORD = "correct horse battery staple"


class Secrets(set):
    def add_all(self, *values) -> None:
        self.update(v for v in values if isinstance(v, str) and len(v) >= 8)


def _query(location: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _browser_sequence(base: str, rp: dict, rp_secret: str, seen: Secrets) -> None:
    http = requests.Session()
    verifier, challenge = pkce_pair()
    seen.add_all(verifier)
    params = {"response_type": "code", "client_id": rp["client_id"], "redirect_uri":
              REDIRECT_URI, "scope": "openid profile email offline_access", "state": "s1",
              "nonce": "n1", "code_challenge": challenge, "code_challenge_method": "S256"}
    to_login = http.get(base + endpoints.AUTHORIZATION, params=params, allow_redirects=False)
    login_url = base + to_login.headers["Location"]
    for password in ("wrong password typed", PASSWORD):
        page = http.get(login_url)
        fields = hidden_fields(page.text)
        seen.add_all(fields.get("csrf_token"))
        response = http.post(base + "/login", allow_redirects=False, data={
            **fields, "username": "alice", "password": password})
    seen.add_all("wrong password typed", *http.cookies.values())
    consent = http.get(base + response.headers["Location"], allow_redirects=False)
    fields = hidden_fields(consent.text)
    seen.add_all(fields.get("csrf_token"))
    done = http.post(base + endpoints.AUTHORIZATION, data={**fields, "decision": "allow"},
                     allow_redirects=False)
    code = _query(done.headers["Location"])["code"]
    seen.add_all(code)
    auth = basic_auth(rp["client_id"], rp_secret)
    tokens = http.post(base + endpoints.TOKEN, headers=auth, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier}).json()
    seen.add_all(tokens["access_token"], tokens["refresh_token"], tokens["id_token"])
    fresh = http.post(base + endpoints.TOKEN, headers=auth, data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}).json()
    seen.add_all(fresh.get("access_token"), fresh.get("refresh_token"))
    http.post(base + endpoints.TOKEN, headers=auth, data={  # reuse
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    http.post(base + endpoints.TOKEN, headers=auth, data={  # replay (revokes what it issued)
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier})
    http.get(base + endpoints.USERINFO,
             headers={"Authorization": f"Bearer {tokens['access_token']}"})
    http.get(base + endpoints.END_SESSION, params={"id_token_hint": tokens["id_token"]})


def _client_sequence(base: str, cc: dict, cc_secret: str, seen: Secrets) -> None:
    auth = basic_auth(cc["client_id"], cc_secret)
    token = requests.post(base + endpoints.TOKEN, headers=auth,
                          data={"grant_type": "client_credentials"}).json()["access_token"]
    seen.add_all(token)
    requests.post(base + endpoints.INTROSPECTION, headers=auth, data={"token": token})
    requests.post(base + endpoints.REVOCATION, headers=auth, data={"token": token})
    wrong = "wrong-" + secrets.token_urlsafe(16)
    seen.add_all(wrong)
    requests.post(base + endpoints.TOKEN, headers=basic_auth(cc["client_id"], wrong),
                  data={"grant_type": "client_credentials"})
    # Secrets in the places a careless log line would pick them up: query and form.
    requests.post(base + endpoints.TOKEN + "?client_secret=" + cc_secret,
                  data={"grant_type": "client_credentials", "client_id": cc["client_id"],
                        "client_secret": cc_secret})


def _audit_text(app) -> str:
    with services(app).session_factory() as db:
        rows = db.scalars(select(AuditEvent)).all()
        return "\n".join(repr({c.name: getattr(r, c.name) for c in AuditEvent.__table__.c})
                         for r in rows)


def _leaks(text: str, seen: Secrets) -> list[str]:
    return sorted(s[:10] + "…" for s in seen if s in text)


def test_no_secret_in_server_logs_or_audit_rows_at_debug_level(app, settings, live_server):
    seen = Secrets()
    make_person(app, "alice", PASSWORD)
    seen.add_all(PASSWORD)
    rp, rp_secret = make_rp(app)
    cc, cc_secret = make_client(app, scope="read", default_scope="read")
    seen.add_all(rp_secret, cc_secret)
    server = live_server(settings=settings.replace(log_level="DEBUG"), workers=1)

    _client_sequence(server.url, cc, cc_secret, seen)
    _browser_sequence(server.url, rp, rp_secret, seen)

    log = server.log()
    assert "token.issued" in log and "login.failed" in log  # the log is the real one
    assert server.env["AUTHSERVER_LOG_LEVEL"] == "DEBUG"
    assert len(seen) >= 12
    assert not _leaks(log, seen), f"secrets in the server log: {_leaks(log, seen)}"
    audit = _audit_text(app)
    assert "refresh_token.reuse_detected" in audit and "authorization_code.replayed" in audit
    assert not _leaks(audit, seen), f"secrets in audit rows: {_leaks(audit, seen)}"


def test_no_secret_in_in_process_log_records(app, client, caplog):
    """The records themselves, before any handler's redaction: nothing logs a value."""
    caplog.set_level(logging.DEBUG)
    seen = Secrets()
    cc, cc_secret = make_client(app, scope="read", default_scope="read")
    seen.add_all(cc_secret)
    auth = basic_auth(cc["client_id"], cc_secret)
    token = client.post(endpoints.TOKEN, headers=auth,
                        data={"grant_type": "client_credentials"}).get_json()["access_token"]
    seen.add_all(token)
    client.post(endpoints.INTROSPECTION, headers=auth, data={"token": token})
    client.post(endpoints.REVOCATION, headers=auth, data={"token": token})
    client.post(endpoints.TOKEN, data={"grant_type": "client_credentials",
                                       "client_id": cc["client_id"], "client_secret": "x" * 20})
    records = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert "token.issued" in records
    assert not _leaks(records, seen), _leaks(records, seen)
