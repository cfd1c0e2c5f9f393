"""Test databases: one migrated database per backend per test worker, wiped between tests.

SQLite is a file in the session's temp dir. PostgreSQL (AUTHSERVER_TEST_DATABASE_URL) gets a
schema of its own per worker (search_path in the URL), dropped at the end, so parallel workers
and the live servers they start share exactly the data of the test that runs.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from sqlalchemy import delete, text
from sqlalchemy.engine import make_url

from authserver import migrate, models
from authserver.db import make_engine

PG_ENV = "AUTHSERVER_TEST_DATABASE_URL"
REDIS_ENV = "AUTHSERVER_TEST_REDIS_URL"


def backends() -> list[str]:
    return ["sqlite", "postgresql"] if os.environ.get(PG_ENV) else ["sqlite"]


def _with_search_path(url: str, schema: str) -> str:
    parsed = make_url(url)
    query = dict(parsed.query)
    query["options"] = f"-csearch_path={schema}"
    return parsed.set(query=query).render_as_string(hide_password=False)


class Databases:
    def __init__(self, tmp: Path, worker: str):
        self._tmp = tmp
        self._worker = worker
        self._urls: dict[str, str] = {}
        self._engines = {}
        self._schemas: list[str] = []

    def url(self, backend: str) -> str:
        if backend not in self._urls:
            if backend == "sqlite":
                url = f"sqlite:///{self._tmp / f'authserver-{self._worker}.db'}"
            else:
                url = self._new_pg_schema()
            engine = make_engine(url)
            migrate.upgrade(engine)
            self._urls[backend], self._engines[backend] = url, engine
        return self._urls[backend]

    def new_empty_pg_url(self) -> str:
        """A fresh, unmigrated PostgreSQL schema (for migration tests)."""
        return self._new_pg_schema()

    def _new_pg_schema(self) -> str:
        base = os.environ[PG_ENV]
        schema = f"t_{self._worker}_{secrets.token_hex(3)}".lower()
        engine = make_engine(base)
        try:
            with engine.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        except Exception as exc:
            raise RuntimeError(
                f"{PG_ENV} is set but PostgreSQL is not usable: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            engine.dispose()
        self._schemas.append(schema)
        return _with_search_path(base, schema)

    def wipe(self, backend: str) -> None:
        engine = self._engines[backend]
        with engine.begin() as conn:
            for table in reversed(models.Base.metadata.sorted_tables):
                conn.execute(delete(table))
            conn.execute(text("INSERT INTO audit_chain (id, seq, last_hash) "
                              "VALUES (1, 0, :h)"), {"h": "0" * 64})
            conn.execute(text("INSERT INTO keyring_state (id, version) VALUES (1, 0)"))
            conn.execute(text("INSERT INTO change_counters (name, value) VALUES ('clients', 0)"))

    def audit_text(self, backend: str) -> str:
        from tests.support.leak_sweep import audit_rows_text

        return audit_rows_text(self._engines[backend])

    def close(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        if self._schemas:
            engine = make_engine(os.environ[PG_ENV])
            with engine.begin() as conn:
                for schema in self._schemas:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            engine.dispose()


@contextlib.contextmanager
def refusing_token_events(engine, backend: str):
    """While inside, the database refuses to insert a ``token.issued`` audit event (an
    audit write that fails at the database, whoever makes it)."""
    if backend == "sqlite":
        create = ("CREATE TRIGGER refuse_tokens BEFORE INSERT ON audit_events "
                  "WHEN NEW.type = 'token.issued' BEGIN SELECT RAISE(ABORT, 'refused'); END")
        drop = "DROP TRIGGER refuse_tokens"
    else:
        create = ("ALTER TABLE audit_events ADD CONSTRAINT refuse_tokens "
                  "CHECK (type <> 'token.issued') NOT VALID")
        drop = "ALTER TABLE audit_events DROP CONSTRAINT refuse_tokens"
    with engine.begin() as conn:
        conn.execute(text(create))
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text(drop))
