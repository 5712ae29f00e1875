"""Benchmark history and statistical regression detection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scaleforge.errors import InvalidParameterError
from scaleforge.monitor.regression import BenchHistory, compare, lower_is_better, parse_bench_output


def _run(bench: str, **metrics: object) -> dict[str, object]:
    return {"bench": bench, "metrics": metrics}


def test_parse_takes_the_last_line() -> None:
    out = (
        'table...\nmedian 3 ms\n{"bench": "cache", "metrics": {"get_ns": 120.5, "hit_rate": [0.9, 0.91]}}\n\n'
    )
    assert parse_bench_output(out) == {
        "bench": "cache",
        "metrics": {"get_ns": 120.5, "hit_rate": [0.9, 0.91]},
    }


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        ("just text", "not JSON"),
        ('{"metrics": {}}', "must be an object"),
        ('{"bench": "x", "metrics": {"a": "fast"}}', "number or a list of numbers"),
    ],
)
def test_parse_rejects_bad_output(text: str, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        parse_bench_output(text)


def test_history_roundtrip_and_selection(tmp_path: Path) -> None:
    h = BenchHistory(tmp_path / "sub" / "h.jsonl")
    assert h.records() == []
    a = h.append(_run("cache", t_ns=1.0), commit="aaaa1111", label="base", machine={"cpu": "x"})
    h.append(_run("cache", t_ns=2.0), commit="bbbb2222", machine={})
    h.append(_run("monitor", t_ns=3.0), commit="bbbb2222", machine={})
    assert [r["commit"] for r in h.records()] == ["aaaa1111", "bbbb2222", "bbbb2222"]
    assert [r["metrics"]["t_ns"] for r in h.records("cache")] == [1.0, 2.0]
    assert h.select("base")[0]["id"] == a["id"]
    assert h.select(a["id"])[0]["label"] == "base"
    assert len(h.select("bbbb")) == 2
    assert len(h.select("bbbb", bench="cache")) == 1
    assert {r["commit"] for r in h.select("latest")} == {"bbbb2222"}
    assert {r["commit"] for r in h.select("previous")} == {"aaaa1111"}
    with pytest.raises(InvalidParameterError, match="Known: "):
        h.select("cccc")


def test_records_get_commit_and_machine_by_default(tmp_path: Path) -> None:
    rec = BenchHistory(tmp_path / "h.jsonl").append(_run("x", a_s=1.0))
    assert {"hostname", "python", "cpu_count"} <= set(rec["machine"])
    assert "commit" in rec  # None outside a repository with commits


def test_unreadable_history_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "h.jsonl"
    bad.write_text(json.dumps({"bench": "x", "metrics": {"a": 1}}) + "\n{not json\n")
    with pytest.raises(InvalidParameterError, match=r"Line 2 .* is not a valid record"):
        BenchHistory(bad).records()
    with pytest.raises(InvalidParameterError, match="Cannot read"):
        BenchHistory(tmp_path).records()  # a directory
    binary = tmp_path / "b.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InvalidParameterError, match="Cannot read"):
        BenchHistory(binary).records()


def _samples(rng: np.random.Generator, center: float, n: int, rel_noise: float = 0.02) -> list[float]:
    return (center * (1 + rel_noise * rng.standard_normal(n))).tolist()


def test_mann_whitney_finds_a_real_regression_and_improvement(global_random_seed: int) -> None:
    rng = np.random.default_rng(global_random_seed)
    a = [_run("m", counter_inc_ns=_samples(rng, 300, 8), tasks_per_s=_samples(rng, 1000, 8))]
    b = [_run("m", counter_inc_ns=_samples(rng, 360, 8), tasks_per_s=_samples(rng, 1200, 8))]
    res = {r.metric: r for r in compare(a, b)}
    assert res["counter_inc_ns"].verdict == "regressed"  # slower
    assert res["counter_inc_ns"].method == "mannwhitneyu"
    assert res["counter_inc_ns"].p_value is not None and res["counter_inc_ns"].p_value < 0.01
    assert res["counter_inc_ns"].ratio == pytest.approx(1.2, rel=0.05)
    assert res["tasks_per_s"].verdict == "improved"  # more throughput


def test_noise_alone_is_not_a_regression(global_random_seed: int) -> None:
    rng = np.random.default_rng(global_random_seed)
    flagged = 0
    for _ in range(40):
        a = [_run("m", t_s=_samples(rng, 1.0, 5, 0.1))]
        b = [_run("m", t_s=_samples(rng, 1.0, 5, 0.1))]
        flagged += compare(a, b)[0].verdict != "unchanged"
    assert flagged <= 6  # two one-sided tests at 0.05: about 10% expected, never most


def test_samples_come_from_repeated_runs_too() -> None:
    a = [_run("m", t_s=v) for v in (1.0, 1.01, 0.99, 1.0)]
    b = [_run("m", t_s=v) for v in (1.5, 1.52, 1.49, 1.51)]
    (res,) = compare(a, b)
    assert (res.n_a, res.n_b, res.method, res.verdict) == (4, 4, "mannwhitneyu", "regressed")


def test_bootstrap_with_two_samples_and_insufficient_with_one() -> None:
    (res,) = compare([_run("m", t_s=[1.0, 1.02])], [_run("m", t_s=[2.0, 2.02])])
    assert res.method == "bootstrap"
    assert res.ci_low is not None and res.ci_low > 1.5
    assert res.verdict == "regressed"
    (res,) = compare([_run("m", t_s=1.0)], [_run("m", t_s=2.0)])
    assert (res.method, res.verdict) == ("none", "insufficient")


def test_unknown_direction_is_reported_as_changed() -> None:
    (res,) = compare([_run("m", widgets=[1, 1.1, 0.9, 1.0])], [_run("m", widgets=[5, 5.1, 4.9, 5.0])])
    assert res.verdict == "changed"


def test_direction_heuristics() -> None:
    assert lower_is_better("histogram_observe_ns") is True
    assert lower_is_better("sampler_cpu_pct") is True
    assert lower_is_better("anomaly_false_alarm_rate") is True
    assert lower_is_better("anomaly_recall") is False
    assert lower_is_better("requests_per_s") is False
    assert lower_is_better("cache_hit_rate") is False


def test_per_repeat_samples_make_one_run_enough(tmp_path: Path) -> None:
    h = BenchHistory(tmp_path / "h.jsonl")
    base = {"bench": "m", "metrics": {"t_ns": 100.0}, "samples": {"t_ns": [99.0, 100.0, 101.0, 100.5, 99.5]}}
    slow = {
        "bench": "m",
        "metrics": {"t_ns": 130.0},
        "samples": {"t_ns": [129.0, 130.0, 131.0, 130.5, 129.5]},
    }
    h.append(base, commit="aaaa0000", machine={})
    h.append(slow, commit="bbbb0000", machine={})
    (res,) = compare(h.select("aaaa"), h.select("bbbb"))
    assert (res.n_a, res.n_b, res.method, res.verdict) == (5, 5, "mannwhitneyu", "regressed")
    with pytest.raises(InvalidParameterError, match="samples"):
        parse_bench_output('{"bench": "m", "metrics": {}, "samples": [1, 2]}')
