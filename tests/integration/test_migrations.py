"""The migrations produce exactly the models' schema, on every backend."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from authserver import migrate, models
from authserver.db import make_engine


def _diff(url: str):
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(ctx, models.Base.metadata), set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_migrations_produce_exactly_the_models_schema(database_url):
    diff, tables = _diff(database_url)
    assert diff == []
    assert set(models.Base.metadata.tables) <= tables


def test_upgrade_from_empty_is_idempotent(backend, databases, tmp_path):
    url = (f"sqlite:///{tmp_path / 'fresh.db'}" if backend == "sqlite"
           else databases.new_empty_pg_url())
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        migrate.upgrade(engine)  # a second run changes nothing and does not fail
    finally:
        engine.dispose()
    diff, _ = _diff(url)
    assert diff == []
