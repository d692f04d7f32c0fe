"""Alembic environment of the results store.

At runtime ``db.migrate`` hands over an open connection (``config.attributes["connection"]``)
inside a transaction it holds (and has locked against concurrent upgrades), so no
alembic.ini is needed. For developers, ``alembic -c db/migrations/alembic.ini ...``
works too: then the URL comes from ``-x url=...``, else ``$CRE_STORE``, else the
default store.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from db.schema import metadata

config = context.config


def _configure(connection) -> None:  # noqa: ANN001
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTERs go through table copies
        compare_type=True,
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    from db.urls import default_store_url, engine_url

    url = context.get_x_argument(as_dictionary=True).get("url") or default_store_url()
    engine = create_engine(engine_url(url))
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():  # pragma: no cover - offline SQL generation is not used
    raise SystemExit("offline mode is not supported: run migrations against a database")
run_migrations_online()
