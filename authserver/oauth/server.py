"""The Authlib AuthorizationServer for Flask, wired to our storage, keys and policies.

- Client authentication is ours (client_auth.py): exactly the registered method.
- Token endpoint parameters are read from the form body only, never the query string.
- Every response of the token, introspection and revocation endpoints carries
  ``Cache-Control: no-store`` (RFC 6749 §5.1), errors included; ``invalid_client`` is 401 with
  ``WWW-Authenticate: Basic`` when Basic was tried.
- Authlib's default token generator is never used: grants issue JWTs via access_tokens.py.
"""

from __future__ import annotations

from authlib.integrations.flask_oauth2 import AuthorizationServer as FlaskAuthorizationServer
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Payload, FlaskOAuth2Request
from flask import Response, json
from flask import request as flask_request

from .. import endpoints
from ..extensions import Services, db_session, services
from ..models.client import Client
from . import client_auth, errors


class _BodyPayload(FlaskOAuth2Payload):
    """POST parameters from the body only (RFC 6749 §3.2: credentials never in the URL)."""

    @property
    def data(self):
        r = self._request
        return r.form if r.method == "POST" else r.args


class OAuthRequest(FlaskOAuth2Request):
    def __init__(self, request):
        super().__init__(request)
        self.payload = _BodyPayload(request)

    @property
    def remote_addr(self):
        return self._request.remote_addr


NO_STORE = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]


class AuthorizationServer(FlaskAuthorizationServer):
    def __init__(self):
        super().__init__()
        errors.install()
        self.scopes_supported = None  # per-client scopes are enforced by the grants

    # -- per-app services -----------------------------------------------------------------

    @property
    def services(self) -> Services:
        return services()

    def db_session(self):
        return db_session()

    # -- Authlib hooks ----------------------------------------------------------------------

    def query_client(self, client_id):
        client = db_session().get(Client, client_id) if isinstance(client_id, str) else None
        return client if client is not None and client.active else None

    def save_token(self, token, request):
        """Grants record what they issue themselves; Authlib's hook has nothing to do."""

    def create_oauth2_request(self, request):
        return OAuthRequest(flask_request)

    def authenticate_client(self, request, methods, endpoint="token"):
        url = self.services.settings.issuer + endpoints.TOKEN
        return client_auth.authenticate(self.services, db_session(), request, url)

    def handle_error_response(self, request, error):
        status, body, headers = error(self.get_error_uri(request, error))
        headers = [h for h in headers if h[0].lower() != "www-authenticate"]
        if getattr(error, "error", None) == "invalid_client":
            status = 401
        headers += errors.challenge_headers(error)
        return self.handle_response(status, body, headers)

    def handle_response(self, status_code, payload, headers):
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        response = Response(payload, status=status_code, headers=headers)
        for name, value in NO_STORE:
            response.headers[name] = value
        return response

    def send_signal(self, name, *args, **kwargs):
        pass  # no blinker signals: audit events are written by the grants


def init() -> AuthorizationServer:
    from .client_credentials import ClientCredentialsGrant

    server = AuthorizationServer()
    server.register_grant(ClientCredentialsGrant)
    return server
