"""Alembic environment. `authserver init` runs it with a connection in
``config.attributes["connection"]``; plain `alembic` runs use AUTHSERVER_DATABASE_URL."""

from __future__ import annotations

from alembic import context

from authserver import models

target_metadata = models.Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    from authserver.config import Settings
    from authserver.db import make_engine

    engine = make_engine(Settings.from_env().database_url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
