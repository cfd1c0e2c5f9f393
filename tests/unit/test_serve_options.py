"""gunicorn options that matter for security."""

from gunicorn.config import Config

from authserver.serve import gunicorn_options


def test_gunicorn_trusts_no_forwarded_headers_itself():
    """X-Forwarded-* are honoured only by the app's ProxyFix for AUTHSERVER_TRUSTED_PROXIES
    hops; gunicorn's own default would trust X-Forwarded-Proto from loopback."""
    cfg = Config()
    for key, value in gunicorn_options().items():
        if key in cfg.settings:
            cfg.set(key, value)
    assert cfg.forwarded_allow_ips == []
    assert Config().forwarded_allow_ips  # the default it replaces is not empty
