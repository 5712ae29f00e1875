"""Test helpers for scaleforge and for anyone writing a backend.

Service fixtures (``redis_url``, ``database_url``), conformance suites
(``TierTests``, ``ExecutorTests``, ``CodecTests``) and Hypothesis strategies.
Register the fixtures with ``pytest_plugins = ["scaleforge.testing.fixtures"]``.
"""

from __future__ import annotations

__all__: list[str] = []
