"""Alembic migrations of the job store, run programmatically by :func:`scaleforge.jobs.store.upgrade_database`."""

from __future__ import annotations

__all__: list[str] = []
