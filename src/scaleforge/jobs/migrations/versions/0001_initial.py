"""Initial job store schema: sf_jobs and sf_job_events.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

__all__ = ["downgrade", "upgrade"]

revision = "0001_initial"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the tables and the indexes the service and the queue query by."""
    op.create_table(
        "sf_jobs",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(32), nullable=False, unique=True),
        sa.Column("workload", sa.String(200), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("lease_expires_at", sa.Float, nullable=True),
        sa.Column("worker_id", sa.String(200), nullable=True),
        sa.Column("claim_token", sa.String(32), nullable=True),
        sa.Column("result_ref", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.UniqueConstraint("owner", "idempotency_key", name="uq_sf_jobs_owner_key"),
    )
    op.create_index("ix_sf_jobs_claim", "sf_jobs", ["status", sa.text("priority DESC"), "seq"])
    op.create_index("ix_sf_jobs_owner_status", "sf_jobs", ["owner", "status", "seq"])
    op.create_index("ix_sf_jobs_lease", "sf_jobs", ["status", "lease_expires_at"])
    op.create_table(
        "sf_job_events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("worker_id", sa.String(200), nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
    )
    op.create_index("ix_sf_job_events_job_id", "sf_job_events", ["job_id"])


def downgrade() -> None:
    """Drop everything :func:`upgrade` created."""
    op.drop_index("ix_sf_job_events_job_id", table_name="sf_job_events")
    op.drop_table("sf_job_events")
    op.drop_index("ix_sf_jobs_lease", table_name="sf_jobs")
    op.drop_index("ix_sf_jobs_owner_status", table_name="sf_jobs")
    op.drop_index("ix_sf_jobs_claim", table_name="sf_jobs")
    op.drop_table("sf_jobs")
