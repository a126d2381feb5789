"""Alembic environment of CardLink: the models' metadata, batch mode, one transaction per revision.

The database comes from the caller (``cardlink.database.migrate`` puts its
DatabaseManager in ``config.attributes``) or, for the ``alembic`` command at the
repository root, from the library's own resolution: ``sqlalchemy.url`` if the
ini sets one, else ``DATABASE_URL``, the ``CARDLINK_DB_*`` variables, then the
SQLite default.
"""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any

from alembic import context

from cardlink.database.config import DatabaseConfig
from cardlink.database.manager import DatabaseManager
from cardlink.database.migrate import migration_connection, render_item
from cardlink.database.models import Base

config = context.config

if config.config_file_name is not None and "cardlink_manager" not in config.attributes:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _database_config() -> DatabaseConfig:
    return DatabaseConfig(config.get_main_option("sqlalchemy.url") or None)


def _options(backend: str) -> dict[str, Any]:
    """configure() options shared by the online and offline modes."""
    return {
        "target_metadata": target_metadata,
        # Batch operations work on every backend; on SQLite they rebuild the table.
        "render_as_batch": True,
        "compare_type": True,
        "compare_server_default": True,
        "render_item": render_item,
        "transaction_per_migration": True,
        # The manager runs SQLite in explicit BEGIN mode, so its DDL is transactional too.
        "transactional_ddl": backend in ("sqlite", "postgresql"),
    }


def run_migrations_offline() -> None:
    """Write the SQL of the migrations to the output instead of running it (``--sql``)."""
    manager = config.attributes.get("cardlink_manager")
    database = manager.config if manager is not None else _database_config()
    context.configure(
        url=database.url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **_options(database.backend),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations over a live connection."""
    manager = config.attributes.get("cardlink_manager")
    owned = manager is None
    if manager is None:
        manager = DatabaseManager(_database_config())
    try:
        with migration_connection(manager) as connection:
            context.configure(connection=connection, **_options(manager.config.backend))
            with context.begin_transaction():
                context.run_migrations()
    finally:
        if owned:
            manager.close()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
