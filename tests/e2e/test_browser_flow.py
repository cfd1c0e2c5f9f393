"""A real browser (Playwright driving Debian's chromium) against a real `authserver serve`:
sign in, consent, code on a loopback redirect URI, exchange, ID token checked with PyJWT
against the JWKS, two refreshes, reuse detection, RP-initiated logout.

This test fails, never skips, when chromium is missing: `make test` installs it
(Makefile system-deps).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
from jwt import PyJWKClient
from playwright.sync_api import sync_playwright

from tests.support.cli import run
from tests.support.factories import make_client

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PASSWORD = "a long and winding passphrase"


class RelyingParty:
    """The client app's loopback redirect endpoint: records what the browser brings back."""

    def __init__(self):
        self.received: list[tuple[str, dict]] = []
        rp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                parts = urlsplit(self.path)
                rp.received.append((parts.path, {k: v[0] for k, v in
                                                 parse_qs(parts.query).items()}))
                body = b"<!doctype html><title>back at the app</title><h1>App</h1>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def last(self, path: str) -> dict:
        matching = [query for p, query in self.received if p == path]
        assert matching, f"nothing arrived at {path}: {self.received}"
        return matching[-1]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def relying_party():
    rp = RelyingParty()
    yield rp
    rp.stop()


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def _launch(p):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make system-deps)",
                    pytrace=False)
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def test_browser_sign_in_consent_code_refresh_reuse_logout(app, settings, live_server,
                                                           relying_party):
    callback, bye = relying_party.base + "/callback", relying_party.base + "/bye"
    rp, secret = make_client(app, client_name="Loopback App",
                             grant_types=["authorization_code", "refresh_token"],
                             redirect_uris=[callback], post_logout_redirect_uris=[bye],
                             scope="openid profile email offline_access")
    server = live_server()
    run(settings, "users", "create", "carol", "--password-stdin", "--email",
        "carol@example.test", "--name", "Carol Example", input=PASSWORD + "\n")
    doc = server.get("/.well-known/openid-configuration").json()
    verifier, challenge = _pkce()
    state, nonce = secrets.token_urlsafe(8), secrets.token_urlsafe(8)
    authorize_url = doc["authorization_endpoint"] + "?" + urlencode({
        "response_type": "code", "client_id": rp["client_id"], "redirect_uri": callback,
        "scope": "openid profile email offline_access", "state": state, "nonce": nonce,
        "code_challenge": challenge, "code_challenge_method": "S256"})

    with sync_playwright() as p:
        browser = _launch(p)
        context = browser.new_context()
        page = context.new_page()

        # Sign in, then consent.
        page.goto(authorize_url)
        assert page.get_by_role("heading", name="Sign in").is_visible()
        page.get_by_label("Username").fill("carol")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_selector("text=Allow")
        assert "Loopback App" in page.inner_text("h1")
        assert page.get_by_text("See your email address").is_visible()
        for cookie in context.cookies(server.url):
            assert cookie["httpOnly"] and cookie["sameSite"] == "Lax", cookie
        page.get_by_role("button", name="Allow").click()
        page.wait_for_url(callback + "?*")
        back = relying_party.last("/callback")
        assert back["state"] == state and back["iss"] == doc["issuer"]

        # Exchange the code; check the ID token with PyJWT and the published JWKS only.
        tokens = requests.post(doc["token_endpoint"], auth=(rp["client_id"], secret), data={
            "grant_type": "authorization_code", "code": back["code"],
            "redirect_uri": callback, "code_verifier": verifier}, timeout=10)
        assert tokens.status_code == 200, tokens.text
        body = tokens.json()
        jwks = PyJWKClient(doc["jwks_uri"])
        id_token = jwt.decode(body["id_token"],
                              jwks.get_signing_key_from_jwt(body["id_token"]).key,
                              algorithms=["RS256"], audience=rp["client_id"],
                              issuer=doc["issuer"],
                              options={"require": ["exp", "iat", "sub", "auth_time"]})
        assert jwt.get_unverified_header(body["id_token"])["alg"] == "RS256"
        assert id_token["nonce"] == nonce
        assert id_token["at_hash"] == _at_hash(body["access_token"])
        info = requests.get(doc["userinfo_endpoint"], timeout=10,
                            headers={"Authorization": "Bearer " + body["access_token"]})
        assert info.json()["sub"] == id_token["sub"]
        assert info.json()["email"] == "carol@example.test"

        # Refresh twice (rotation), then replay the first refresh token.
        def refresh(token):
            return requests.post(doc["token_endpoint"], auth=(rp["client_id"], secret),
                                 data={"grant_type": "refresh_token", "refresh_token": token},
                                 timeout=10)

        second = refresh(body["refresh_token"])
        assert second.status_code == 200, second.text
        third = refresh(second.json()["refresh_token"])
        assert third.status_code == 200, third.text
        newest = third.json()
        assert len({body["refresh_token"], second.json()["refresh_token"],
                    newest["refresh_token"]}) == 3
        reuse = refresh(body["refresh_token"])
        assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"

        def introspect(token):
            return requests.post(doc["introspection_endpoint"], data={"token": token},
                                 auth=(rp["client_id"], secret), timeout=10).json()

        assert introspect(newest["refresh_token"]) == {"active": False}
        assert introspect(newest["access_token"]) == {"active": False}
        assert refresh(newest["refresh_token"]).json()["error"] == "invalid_grant"

        # RP-initiated logout back to the registered URI; the session is gone afterwards.
        page.goto(doc["end_session_endpoint"] + "?" + urlencode({
            "id_token_hint": body["id_token"], "post_logout_redirect_uri": bye,
            "state": "bye-state"}))
        page.wait_for_url(bye + "?*")
        assert relying_party.last("/bye") == {"state": "bye-state"}
        page.goto(authorize_url + "&prompt=none")
        page.wait_for_url(callback + "?*")
        assert relying_party.last("/callback")["error"] == "login_required"
        browser.close()
