"""The OAuth 2 protocol on Authlib: one module per concept or RFC."""
