"""Shared test configuration: service fixtures, clean environment, Hypothesis profiles."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

pytest_plugins = ["scaleforge.testing.fixtures"]

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.load_profile(os.environ.get("SCALEFORGE_HYPOTHESIS_PROFILE", "dev"))
