"""The job store and queue conformance suite on the real PostgreSQL (one schema per test)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "jobs"))

from _jobs_helpers import DB, postgres_db
from _jobs_store_suite import JobStoreTests

from scaleforge.jobs.models import JobSpec
from scaleforge.jobs.queue import JobQueue
from scaleforge.jobs.store import SQLJobStore

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


class TestPostgresJobStore(JobStoreTests):
    @pytest.fixture
    def db(self, database_url: str) -> Iterator[DB]:
        with postgres_db(database_url) as db:
            yield db

    def test_tables_live_in_the_test_schema(self, db: DB, store: SQLJobStore) -> None:
        import sqlalchemy as sa

        with store.read() as conn:
            tables = set(
                conn.execute(
                    sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                    {"s": db.schema},
                ).scalars()
            )
        assert {"sf_jobs", "sf_job_events", "sf_jobs_alembic_version"} <= tables

    def test_claim_uses_skip_locked(self, store: SQLJobStore) -> None:
        # A row locked by another transaction is skipped, not waited for.
        import sqlalchemy as sa

        first, _ = store.submit(JobSpec("w", priority=9), owner="a")
        second, _ = store.submit(JobSpec("w"), owner="a")
        with store.engine.connect() as locker, locker.begin():
            locker.execute(sa.text("SELECT id FROM sf_jobs WHERE id = :i FOR UPDATE"), {"i": first.id})
            claim = JobQueue(store, lease_s=30).claim("w")
            assert claim is not None and claim.job.id == second.id
        claim2 = JobQueue(store, lease_s=30).claim("w")
        assert claim2 is not None and claim2.job.id == first.id
