"""authserver: a central OAuth 2 / OpenID Connect authorization server."""

__version__ = "0.1.0"


def create_app(settings=None):
    from .app import create_app as _create_app

    return _create_app(settings)


__all__ = ["__version__", "create_app"]
