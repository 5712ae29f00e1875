"""Alembic environment: migrate over the connection handed in by ``upgrade_database``.

There is no ``alembic.ini``: :func:`scaleforge.jobs.store.upgrade_database`
builds the configuration in code and passes an open connection (already inside
a transaction holding the migration lock) in ``config.attributes``.
"""

from __future__ import annotations

from alembic import context

from scaleforge.jobs.models import metadata

__all__: list[str] = []

VERSION_TABLE = "sf_jobs_alembic_version"


def _run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "scaleforge's job migrations run through scaleforge.jobs.store.upgrade_database(engine), "
            "not the alembic command line."
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _inside_alembic() -> bool:
    # Importing this file outside `alembic upgrade` (doctest collection, tooling) must do nothing.
    try:
        context.config  # noqa: B018 - a proxy attribute that exists only while Alembic runs
    except AttributeError:
        return False
    return True


if _inside_alembic():
    _run()
