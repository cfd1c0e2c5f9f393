"""Paths of the public endpoints: the one place they are named. Clients find them through
discovery; only the two well-known documents have fixed paths (CONTRACT §4)."""

AUTHORIZATION = "/oauth2/authorize"
TOKEN = "/oauth2/token"
INTROSPECTION = "/oauth2/introspect"
REVOCATION = "/oauth2/revoke"
USERINFO = "/oauth2/userinfo"
END_SESSION = "/oauth2/logout"
JWKS = "/.well-known/jwks.json"
OPENID_CONFIGURATION = "/.well-known/openid-configuration"
OAUTH_METADATA = "/.well-known/oauth-authorization-server"
ADMIN_OPENAPI = "/admin/openapi.json"
