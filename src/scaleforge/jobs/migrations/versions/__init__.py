"""Alembic revision scripts of the job store (one per schema change, never edited once released)."""

from __future__ import annotations

__all__: list[str] = []
