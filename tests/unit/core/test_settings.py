"""Settings: precedence (argument > env > file > profile > default), profiles, config_context."""

from __future__ import annotations

from pathlib import Path

import pytest

from scaleforge.errors import ConfigError, InvalidParameterError
from scaleforge.settings import (
    Settings,
    config_context,
    get_settings,
    load_settings,
    resolve,
    set_settings,
)


def test_defaults_are_the_balanced_profile() -> None:
    s = Settings()
    assert s.profile == "balanced"
    assert s.cache.memory.enabled and s.cache.disk.enabled
    assert not s.cache.redis.enabled
    assert s.compute.executor == "processes"


def test_distributed_profile_turns_redis_on_and_raises_budgets() -> None:
    balanced, distributed = Settings(), Settings(profile="distributed")
    assert distributed.cache.redis.enabled
    assert distributed.cache.memory.max_bytes > balanced.cache.memory.max_bytes
    assert distributed.cache.disk.max_bytes > balanced.cache.disk.max_bytes


def test_explicit_value_beats_profile() -> None:
    s = Settings(profile="distributed", cache={"redis": {"enabled": False}})
    assert not s.cache.redis.enabled
    # the rest of the profile still applies
    assert s.cache.memory.max_bytes == 2 * 10**9


def test_byte_sizes_accept_units() -> None:
    s = Settings(cache={"memory": {"max_bytes": "1GiB"}, "disk": {"max_bytes": "20GB"}})
    assert s.cache.memory.max_bytes == 2**30
    assert s.cache.disk.max_bytes == 20 * 10**9


def test_env_beats_file_and_file_beats_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "scaleforge.toml"
    cfg.write_text('profile = "high_performance"\n[compute]\nexecutor = "threads"\nmax_workers = 3\n')
    s = load_settings(cfg)
    assert s.compute.executor == "threads" and s.compute.max_workers == 3
    assert s.profile == "high_performance"
    monkeypatch.setenv("SCALEFORGE_COMPUTE__EXECUTOR", "ray")
    s = load_settings(cfg)
    assert s.compute.executor == "ray"
    assert s.compute.max_workers == 3
    # an argument beats both
    assert load_settings(cfg, compute={"executor": "dask"}).compute.executor == "dask"


def test_config_env_variable_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "other.toml"
    cfg.write_text('[cache.disk]\nmax_bytes = "3GB"\n')
    monkeypatch.setenv("SCALEFORGE_CONFIG", str(cfg))
    assert load_settings().cache.disk.max_bytes == 3 * 10**9


def test_bad_values_raise_config_error_naming_the_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="unknown profile 'fast'"):
        load_settings(profile="fast")
    with pytest.raises(ConfigError, match="max_bytes"):
        load_settings(cache={"memory": {"max_bytes": "lots"}})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings("/nonexistent/scaleforge.toml")
    monkeypatch.setenv("SCALEFORGE_CACHE__MEMORY__MAX_BYTES", "-5")
    with pytest.raises(ConfigError):
        load_settings()
    # ConfigError is also a ValueError for callers that catch builtins
    assert issubclass(ConfigError, ValueError)


def test_resolve_precedence_argument_context_settings_default() -> None:
    set_settings(Settings(compute={"executor": "threads"}))
    try:
        assert resolve("executor") == "threads"
        with config_context(executor="dask"):
            assert resolve("executor") == "dask"
            assert resolve("executor", "ray") == "ray"
            with config_context(executor="processes"):
                assert resolve("executor") == "processes"
            assert resolve("executor") == "dask"
        assert resolve("executor") == "threads"
        assert resolve("cache", default="fallback") == "fallback"
    finally:
        set_settings(None)


def test_config_context_rejects_unknown_keys() -> None:
    with (
        pytest.raises(InvalidParameterError, match=r"unknown option.*'exector'"),
        config_context(exector="ray"),
    ):
        pass


def test_get_settings_reads_environment_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    set_settings(None)
    monkeypatch.setenv("SCALEFORGE_PROFILE", "memory_optimized")
    try:
        s = get_settings()
        assert s.profile == "memory_optimized"
        assert get_settings() is s
    finally:
        set_settings(None)
    with pytest.raises(InvalidParameterError):
        set_settings("balanced")  # type: ignore[arg-type]


def test_context_value_reads_only_the_active_context() -> None:
    from scaleforge.settings import context_value

    assert context_value("cache", "none") == "none"
    with config_context(cache="tier-object"):
        assert context_value("cache") == "tier-object"
    assert context_value("cache") is None


def test_flat_executor_and_address_shortcuts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCALEFORGE_EXECUTOR", "ray")
    monkeypatch.setenv("SCALEFORGE_ADDRESS", "ray://head:10001")
    s = load_settings()
    assert (s.compute.executor, s.compute.address) == ("ray", "ray://head:10001")
    set_settings(s)
    try:
        assert resolve("executor") == "ray"
    finally:
        set_settings(None)


def test_jobs_and_slurm_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert (
        s.jobs.max_body_bytes == 1_000_000 and s.jobs.url == "http://127.0.0.1:8080" and s.jobs.token is None
    )
    slurm = s.compute.slurm
    assert (slurm.partition, slurm.walltime_min, slurm.folder, slurm.max_requeues, slurm.cluster) == (
        None,
        60,
        None,
        3,
        "auto",
    )
    monkeypatch.setenv("SCALEFORGE_JOBS__MAX_BODY_BYTES", "2MB")
    monkeypatch.setenv("SCALEFORGE_JOBS__URL", "http://jobs.example:9000")
    monkeypatch.setenv("SCALEFORGE_JOBS__TOKEN", "s3cret")
    monkeypatch.setenv("SCALEFORGE_COMPUTE__SLURM__PARTITION", "gpu")
    monkeypatch.setenv("SCALEFORGE_COMPUTE__SLURM__CLUSTER", "local")
    s = load_settings()
    assert s.jobs.max_body_bytes == 2_000_000 and s.jobs.url == "http://jobs.example:9000"
    assert s.jobs.token is not None and s.jobs.token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)  # a secret
    assert (s.compute.slurm.partition, s.compute.slurm.cluster) == ("gpu", "local")
    monkeypatch.setenv("SCALEFORGE_COMPUTE__SLURM__CLUSTER", "pbs")
    with pytest.raises(ConfigError, match="cluster"):
        load_settings()
