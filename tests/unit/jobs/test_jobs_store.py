"""The job store and queue on SQLite (the embedded default), plus store-level validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from _jobs_helpers import DB, sqlite_db
from _jobs_store_suite import JobStoreTests

from scaleforge.errors import InvalidParameterError
from scaleforge.jobs.models import Job, JobSpec
from scaleforge.jobs.queue import JobQueue
from scaleforge.jobs.store import SQLJobStore, normalize_url


class TestSQLiteJobStore(JobStoreTests):
    @pytest.fixture
    def db(self, tmp_path: Path) -> DB:
        return sqlite_db(tmp_path)

    def test_sqlite_uses_wal_and_busy_timeout(self, store: SQLJobStore) -> None:
        with store.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql://u@h:5432/db", "postgresql+psycopg://u@h:5432/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_normalize_url(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


def test_bare_path_means_sqlite_file(tmp_path: Path) -> None:
    store = SQLJobStore(str(tmp_path / "sub" / "j.db"))
    try:
        assert store.dialect == "sqlite" and (tmp_path / "sub" / "j.db").exists()
    finally:
        store.close()


@pytest.mark.parametrize("url", ["mysql://u@h/db", "", "redis://x"])
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidParameterError, match=r"database_url|supports"):
        SQLJobStore(url)


def test_bad_store_arguments_name_the_parameter(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'j.db'}"
    with pytest.raises(InvalidParameterError, match="pool_size"):
        SQLJobStore(url, pool_size=0)
    with pytest.raises(InvalidParameterError, match="schema"):
        SQLJobStore(url, schema="x; drop table")
    with pytest.raises(InvalidParameterError, match="lease_s"):
        JobQueue(SQLJobStore(url), lease_s=0)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"workload": ""}, "workload"),
        ({"workload": "w", "priority": 5000}, "priority"),
        ({"workload": "w", "priority": True}, "priority"),
        ({"workload": "w", "idempotency_key": "x" * 201}, "idempotency_key"),
        ({"workload": "w", "max_attempts": 0}, "max_attempts"),
        ({"workload": "w", "params": [1]}, "params"),
    ],
)
def test_job_spec_validates(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(InvalidParameterError, match=name):
        JobSpec(**kwargs)  # type: ignore[arg-type]


def test_job_dict_round_trip(tmp_path: Path) -> None:
    store = SQLJobStore(f"sqlite:///{tmp_path / 'j.db'}")
    try:
        job, _ = store.submit(JobSpec("w", {"x": 1}), owner="o")
        assert Job.from_dict({**job.to_dict(), "unknown": 1}) == job
        assert not job.done
    finally:
        store.close()


def test_migrations_create_exactly_the_modelled_schema(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from scaleforge.jobs.models import metadata

    store = SQLJobStore(f"sqlite:///{tmp_path / 'j.db'}")
    try:
        with store.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": "sf_jobs_alembic_version"})
            assert context.get_current_revision() == "0001_initial"
            diff = compare_metadata(context, metadata)
            # Autogenerate cannot compare the DESC expression of the claim index; check it directly.
            assert [d for d in diff if getattr(d[1], "name", None) != "ix_sf_jobs_claim"] == []
            info = conn.exec_driver_sql("PRAGMA index_xinfo('ix_sf_jobs_claim')").all()
            assert [(row[2], row[3]) for row in info if row[5]] == [
                ("status", 0),
                ("priority", 1),
                ("seq", 0),
            ]
    finally:
        store.close()
