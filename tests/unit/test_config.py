import pytest

from authserver.config import ConfigError, Settings


def test_defaults_match_the_contract():
    s = Settings.from_env({})
    assert s.issuer == "http://127.0.0.1:8000"
    assert s.database_url == "sqlite:///var/authserver.db"
    assert s.ratelimit_storage_url == "memory://"
    assert (s.access_token_ttl, s.refresh_token_ttl, s.id_token_ttl, s.code_ttl) == (
        600, 2592000, 600, 60)
    assert s.key_rotation_days == 30
    assert s.max_body_bytes == 65536
    assert s.trusted_proxies == 0
    assert s.allow_private_jwks_uri is False


def test_values_are_read_and_typed_from_the_environment():
    s = Settings.from_env({
        "AUTHSERVER_ISSUER": "https://auth.example.com/",
        "AUTHSERVER_ACCESS_TOKEN_TTL": "120",
        "AUTHSERVER_ALLOW_PRIVATE_JWKS_URI": "true",
        "AUTHSERVER_DATABASE_URL": "postgresql+psycopg://u@db/authserver",
    })
    assert s.issuer == "https://auth.example.com"  # trailing slash dropped
    assert s.access_token_ttl == 120
    assert s.allow_private_jwks_uri is True
    assert s.issuer_is_https


@pytest.mark.parametrize("variable, value, needle", [
    ("AUTHSERVER_ISSUER", "http://auth.example.com", "AUTHSERVER_ISSUER"),
    ("AUTHSERVER_ISSUER", "not a url", "AUTHSERVER_ISSUER"),
    ("AUTHSERVER_ISSUER", "https://a.example.com/?x=1", "AUTHSERVER_ISSUER"),
    ("AUTHSERVER_DATABASE_URL", "mysql://root@localhost/x", "AUTHSERVER_DATABASE_URL"),
    ("AUTHSERVER_DATABASE_URL", "::::", "AUTHSERVER_DATABASE_URL"),
    ("AUTHSERVER_DATABASE_URL", "postgresql+psycopg2://u@h/d", "AUTHSERVER_DATABASE_URL"),
    ("AUTHSERVER_ACCESS_TOKEN_TTL", "ten", "AUTHSERVER_ACCESS_TOKEN_TTL"),
    ("AUTHSERVER_ACCESS_TOKEN_TTL", "0", "AUTHSERVER_ACCESS_TOKEN_TTL"),
    ("AUTHSERVER_KEY_ROTATION_DAYS", "-1", "AUTHSERVER_KEY_ROTATION_DAYS"),
    ("AUTHSERVER_RATELIMIT_STORAGE_URL", "ftp://x", "AUTHSERVER_RATELIMIT_STORAGE_URL"),
    ("AUTHSERVER_RATELIMIT_LOGIN", "lots", "AUTHSERVER_RATELIMIT_LOGIN"),
    ("AUTHSERVER_ALLOW_PRIVATE_JWKS_URI", "maybe", "AUTHSERVER_ALLOW_PRIVATE_JWKS_URI"),
    ("AUTHSERVER_ACCESS_TOKEN_ALG", "HS256", "AUTHSERVER_ACCESS_TOKEN_ALG"),
    ("AUTHSERVER_AUDIT_GROUP_COMMIT_WAIT_US", "100001", "AUTHSERVER_AUDIT_GROUP_COMMIT_WAIT_US"),
    ("AUTHSERVER_AUDIT_GROUP_COMMIT_WAIT_US", "-1", "AUTHSERVER_AUDIT_GROUP_COMMIT_WAIT_US"),
    ("AUTHSERVER_AUDIT_GROUP_COMMIT_WAIT_US", "2ms", "AUTHSERVER_AUDIT_GROUP_COMMIT_WAIT_US"),
])
def test_a_bad_value_names_its_variable_in_one_line(variable, value, needle):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({variable: value})
    message = str(err.value)
    assert needle in message
    assert "\n" not in message


@pytest.mark.parametrize("issuer", [
    "http://localhost:8000", "http://127.0.0.1", "http://[::1]:9000", "http://127.5.6.7",
])
def test_http_issuer_is_allowed_on_loopback_only(issuer):
    assert Settings.from_env({"AUTHSERVER_ISSUER": issuer}).issuer == issuer.rstrip("/")


def test_settings_are_frozen():
    s = Settings()
    with pytest.raises(AttributeError):
        s.issuer = "https://evil.example.com"  # type: ignore[misc]


@pytest.mark.parametrize("wait", [-1, 100_001])
def test_the_group_commit_wait_is_bounded_however_settings_are_built(wait):
    with pytest.raises(ConfigError, match="AUDIT_GROUP_COMMIT_WAIT_US"):
        Settings(audit_group_commit_wait_us=wait)
    assert Settings(audit_group_commit_wait_us=0).audit_group_commit_wait_us == 0


@pytest.mark.parametrize("threads", [-1, 4097])
def test_the_worker_threads_are_bounded_however_settings_are_built(threads):
    with pytest.raises(ConfigError, match="WORKER_THREADS"):
        Settings(worker_threads=threads)
    with pytest.raises(ConfigError, match="WORKER_THREADS"):
        Settings.from_env({"AUTHSERVER_WORKER_THREADS": str(threads)})
    assert Settings.from_env({"AUTHSERVER_WORKER_THREADS": "2"}).worker_threads == 2
