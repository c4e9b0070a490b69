"""Alembic environment: the URL comes from the service's settings (see db.alembic_config)."""

from typing import Any

from alembic import context
from sqlalchemy import create_engine

from services.cds_hooks.db import metadata

config = context.config


def _migrate(**target: Any) -> None:
    context.configure(target_metadata=metadata, **target)
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url
    if context.is_offline_mode():
        _migrate(url=url, literal_binds=True)
        return
    given = config.attributes.get("connection")  # an in-memory database's own (db.migrate)
    if given is not None:
        _migrate(connection=given)
        return
    engine = create_engine(url)
    with engine.connect() as connection:
        _migrate(connection=connection)
    engine.dispose()


run()
