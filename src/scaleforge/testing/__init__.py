"""Test helpers for scaleforge and for anyone writing a backend.

- ``scaleforge.testing.fixtures``: pytest fixtures for services (``redis_url``,
  ``redis_server``, ``database_url``), seeds and a clean environment; register
  them with ``pytest_plugins = ["scaleforge.testing.fixtures"]``.
- ``scaleforge.testing.tiers.TierTests``: the conformance suite for a cache ``Tier``.
- ``scaleforge.testing.codecs.CodecTests``: the conformance suite for a ``Codec``.
- ``scaleforge.testing.executors.ExecutorTests``: the conformance suite for an ``Executor``.
- ``scaleforge.testing.strategies``: Hypothesis strategies for arrays and values.

Subclass a suite and supply its fixture::

    from scaleforge.testing.tiers import TierTests

    class TestMyTier(TierTests):
        @pytest.fixture
        def tier(self, tmp_path):
            yield MyTier(tmp_path)

The suites live in their own modules so that importing this package does not
import pytest or Hypothesis.
"""

from __future__ import annotations

__all__: list[str] = []
