"""Tests of ``scaleforge cache stats|clear`` and of the cache demo, on a real disk tier in tmp_path."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from scaleforge.cache.demo import jacobi_poisson, run_cache_demo
from scaleforge.cli import app as root_app
from scaleforge.cli.cache import app
from scaleforge.errors import InvalidParameterError
from scaleforge.settings import set_settings

runner = CliRunner()


@pytest.fixture
def cache_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the settings' disk tier and signing key into tmp_path; return the cache dir."""
    cache_dir = tmp_path / "cache"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCALEFORGE_CACHE__DISK__PATH", str(cache_dir))
    monkeypatch.setenv("SCALEFORGE_CACHE__KEY_FILE", str(tmp_path / "config" / "hmac.key"))
    set_settings(None)
    yield cache_dir
    set_settings(None)


def _fill(n: int) -> list[str]:
    from scaleforge.cache.registry import default_cache
    from scaleforge.hashing import make_key
    from scaleforge.settings import load_settings

    keys = [make_key({"test": str(i)}) for i in range(n)]
    cache = default_cache(load_settings())
    try:
        for i, key in enumerate(keys):
            assert cache.set(key, np.random.default_rng(i).random(1000))
    finally:
        cache.close()
    return keys


def _disk_has(key: str) -> bool:
    from scaleforge.cache.registry import default_cache
    from scaleforge.settings import load_settings

    cache = default_cache(load_settings())
    try:
        return key in cache
    finally:
        cache.close()


def test_stats_json_lists_each_tier(cache_env: Path) -> None:
    _fill(3)
    result = runner.invoke(app, ["stats", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["tier"]: row for row in json.loads(result.output)["tiers"]}
    assert set(rows) == {"memory", "disk"}
    assert rows["disk"]["entries"] == 3
    assert rows["disk"]["bytes"] >= 3 * 8000
    assert rows["memory"]["entries"] == 0
    for row in rows.values():
        assert {"entries", "bytes", "hits", "misses", "errors"} <= set(row)


def test_stats_table_and_mounting_in_the_root_command(cache_env: Path) -> None:
    _fill(1)
    result = runner.invoke(root_app, ["cache", "stats"])
    assert result.exit_code == 0, result.output
    assert "memory" in result.output and "disk" in result.output
    assert "entries" in result.output and "errors" in result.output


def test_clear_one_tier_with_yes(cache_env: Path) -> None:
    keys = _fill(2)
    assert _disk_has(keys[0])
    result = runner.invoke(app, ["clear", "--tier", "disk", "--yes"])
    assert result.exit_code == 0, result.output
    assert "Cleared: disk" in result.output
    assert not _disk_has(keys[0]) and not _disk_has(keys[1])


def test_clear_asks_for_confirmation(cache_env: Path) -> None:
    keys = _fill(1)
    result = runner.invoke(app, ["clear"], input="n\n")
    assert result.exit_code == 1
    assert "Nothing removed" in result.output
    assert _disk_has(keys[0])
    result = runner.invoke(app, ["clear"], input="y\n")
    assert result.exit_code == 0, result.output
    assert "memory, disk" in result.output
    assert not _disk_has(keys[0])


def test_clear_rejects_a_bad_or_disabled_tier(cache_env: Path) -> None:
    result = runner.invoke(app, ["clear", "--tier", "ssd", "--yes"])
    assert result.exit_code == 2
    assert "'--tier' option must be one of memory, disk, redis, all" in result.output
    result = runner.invoke(app, ["clear", "--tier", "redis", "--yes"])
    assert result.exit_code == 2
    assert "redis tier is not enabled" in result.output
    assert "SCALEFORGE_CACHE__REDIS__ENABLED" in result.output


def test_bad_settings_are_reported(cache_env: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["stats", "--config", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_demo_shows_miss_then_hits(tmp_path: Path) -> None:
    out = io.StringIO()
    report = run_cache_demo(Console(file=out, width=120), workdir=tmp_path, grid=24, iterations=200)
    text = out.getvalue()
    assert report["computations"] == 1
    assert report["identical"] is True
    assert report["explain"] == "miss: argument 'iterations' differs (200 -> 201)"
    assert set(report["tiers"]) == {"memory", "disk"}
    assert report["tiers"]["disk"]["hits"] >= 1  # step 3 came from disk
    assert Path(report["cache_dir"]).is_relative_to(tmp_path)
    assert "hit (disk)" in text and "miss: computed and stored" in text


def test_demo_workload_against_the_discrete_solution() -> None:
    # The Jacobi iterate converges to the 5-point finite-difference solution:
    # for u = sin(pi x) sin(pi y), -Δ_h u = (4/h^2) sin^2(pi h/2) * 2 * u exactly.
    n = 17
    h = 1.0 / (n - 1)
    x = np.linspace(0.0, 1.0, n)
    u_exact = np.outer(np.sin(np.pi * x), np.sin(np.pi * x))
    lam = 2 * (4 / h**2) * np.sin(np.pi * h / 2) ** 2
    u = jacobi_poisson(lam * u_exact, iterations=3000)
    np.testing.assert_allclose(u, u_exact, atol=1e-8)
    with pytest.raises(InvalidParameterError, match="'source'"):
        jacobi_poisson(np.ones((3, 4)))
    with pytest.raises(InvalidParameterError, match="'iterations'"):
        jacobi_poisson(np.ones((4, 4)), iterations=0)
