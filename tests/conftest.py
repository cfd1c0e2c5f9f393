"""Shared fixtures.

- ``database_url``: parametrised over the backends in use (SQLite always; PostgreSQL when
  AUTHSERVER_TEST_DATABASE_URL is set), migrated once per worker, wiped after each test.
- ``settings``: Settings for that database with fresh key material; overlay fields with
  ``@pytest.mark.settings(field=value)``.
- ``app`` / ``client``: the Flask app and its test client.
- ``live_server``: a factory for real `authserver serve` processes, stopped at teardown.
"""

from __future__ import annotations

import os

import pytest

from authserver import clock, create_app
from authserver.config import Settings
from authserver.security import material
from tests.support import live_server as live
from tests.support.databases import PG_ENV, REDIS_ENV, Databases, backends


def pytest_report_header(config):
    redis = os.environ.get(REDIS_ENV)
    return [f"authserver backends: {', '.join(backends())}; redis: {'yes' if redis else 'no'}"]


def pytest_collection_modifyitems(config, items):
    """Like PostgreSQL, Redis is covered when its URL is given (`.ci/run` always gives it):
    without AUTHSERVER_TEST_REDIS_URL the Redis tests are deselected (reported), and with it
    an unreachable Redis fails them loudly. Tests marked ``postgresql_only`` (a database
    server's behaviour, nothing SQLite has) are deselected the same way without
    AUTHSERVER_TEST_DATABASE_URL."""
    drop = [i for i in items
            if (not os.environ.get(REDIS_ENV) and "redis_url" in getattr(i, "fixturenames", ()))
            or (not os.environ.get(PG_ENV) and i.get_closest_marker("postgresql_only"))]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [i for i in items if i not in drop]


@pytest.fixture(scope="session")
def databases(tmp_path_factory, worker_id):
    dbs = Databases(tmp_path_factory.mktemp("db"), worker_id)
    yield dbs
    dbs.close()


@pytest.fixture(scope="session", autouse=True)
def leak_registry():
    """Whole-suite sweep (tests/support/leak_sweep.py): fails the session's last test
    teardown if any registered secret or a JWT reached a log line; audit rows are checked
    after every test."""
    import logging

    from authserver.security import tokens
    from tests.support import browser
    from tests.support.leak_sweep import Collector, Registry

    registry = Registry()
    registry.add(browser.PASSWORD)
    original = tokens.generate
    tokens.generate = lambda nbytes=tokens.SECRET_BYTES: registry.add(original(nbytes))
    handler = Collector(registry)
    logging.getLogger().addHandler(handler)
    yield registry
    logging.getLogger().removeHandler(handler)
    tokens.generate = original
    leaks = registry.leaks("\n".join(registry.log_lines))
    assert not leaks, f"secrets in log lines: {leaks[:5]}"


@pytest.fixture(params=backends())
def backend(request) -> str:
    return request.param


@pytest.fixture
def database_url(databases, backend, leak_registry):
    url = databases.url(backend)
    databases.wipe(backend)
    yield url
    leaks = leak_registry.leaks(databases.audit_text(backend))
    databases.wipe(backend)
    assert not leaks, f"secrets in audit rows: {leaks[:5]}"


@pytest.fixture
def keys_dir(tmp_path):
    path = tmp_path / "keys"
    material.ensure(path)
    return path


@pytest.fixture
def settings(request, database_url, keys_dir) -> Settings:
    overrides: dict = {}
    for marker in reversed(list(request.node.iter_markers("settings"))):
        overrides.update(marker.kwargs)
    return Settings(database_url=database_url, keys_dir=str(keys_dir), **overrides)


@pytest.fixture(scope="session", autouse=True)
def _signing_key_pool():
    """Generating RSA keys dominates a test's set-up (every test starts from an empty key
    set). In-process tests draw from a pool made once per worker instead; consecutive draws
    are distinct keys, so kids stay unique within a test. The generation code itself is
    exercised by the e2e tests, whose server processes are not patched."""
    import itertools

    from authserver.keyring import store

    original = store._generate
    pools = {alg: itertools.cycle([original(alg) for _ in range(16)])
             for alg in store.ALGORITHMS}
    store._generate = lambda alg: next(pools[alg])
    yield
    store._generate = original


@pytest.fixture(autouse=True)
def _reset_clock():
    clock.reset()
    yield
    clock.reset()


@pytest.fixture
def app(settings):
    application = create_app(settings)
    yield application
    application.extensions["authserver"].close()  # after a seal a request started


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def live_server(settings, leak_registry):
    servers: list[live.LiveServer] = []

    def start(**kwargs) -> live.LiveServer:
        server = live.start(kwargs.pop("settings", settings), **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
    for server in servers:
        leak_registry.log_lines.append(server.log())


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.fail(f"{REDIS_ENV} is not set: this test needs Redis", pytrace=False)
    return url


__all__ = ["PG_ENV"]
