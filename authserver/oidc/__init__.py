"""OpenID Connect on top of the OAuth 2 core."""
