"""Each recommendation rule fires on its evidence and stays silent without it."""

from __future__ import annotations

from typing import Any

import pytest

from scaleforge.monitor.recommend import RULES, recommend


def _rules(snapshot: dict[str, Any]) -> list[str]:
    return [r.rule for r in recommend(snapshot)]


def test_no_data_no_hints() -> None:
    assert recommend({}) == []
    assert recommend({"figures": {}}) == []


def test_low_hit_rate_because_of_one_argument() -> None:
    snap = {
        "figures": {"cache_lookups_total": 200.0, "cache_hit_rate": 0.05},
        "cache_miss_arguments": [
            {"function": "solve", "argument": "verbose", "count": 170.0},
            {"function": "solve", "argument": "mesh", "count": 5.0},
        ],
    }
    (rec,) = recommend(snap)
    assert rec.rule == "cache_ignored_argument"
    assert "ignore=['verbose']" in rec.detail
    assert rec.evidence["misses_differing_only_in_argument"] == 170
    assert rec.evidence["hit_rate"] == 0.05


def test_low_hit_rate_generic_and_thresholds() -> None:
    assert _rules({"figures": {"cache_lookups_total": 200.0, "cache_hit_rate": 0.1}}) == [
        "cache_low_hit_rate"
    ]
    assert _rules({"figures": {"cache_lookups_total": 200.0, "cache_hit_rate": 0.8}}) == []
    assert _rules({"figures": {"cache_lookups_total": 10.0, "cache_hit_rate": 0.0}}) == []  # too few lookups


def test_tasks_too_small_for_processes_but_not_threads() -> None:
    figures = {"task_duration_mean_s": 0.0004, "task_duration_count": 5000.0, "executor": "processes"}
    (rec,) = recommend({"figures": figures})
    assert rec.rule == "tasks_too_small"
    assert rec.evidence["tasks"] == 5000
    assert "chunksize" in rec.detail
    assert _rules({"figures": {**figures, "executor": "threads"}}) == []
    assert _rules({"figures": {**figures, "task_duration_mean_s": 0.5}}) == []


def test_batches_never_filling() -> None:
    figures = {"batches_total": 500.0, "batch_size_p95": 3.0, "batch_size_mean": 1.7, "max_batch_size": 64.0}
    (rec,) = recommend({"figures": figures})
    assert rec.rule == "batches_not_filling"
    assert rec.evidence == {
        "batches": 500,
        "batch_size_mean": 1.7,
        "batch_size_p95": 3.0,
        "max_batch_size": 64.0,
    }
    assert _rules({"figures": {**figures, "batch_size_p95": 60.0}}) == []


def test_batches_limit_defaults_to_settings() -> None:
    figures = {"batches_total": 500.0, "batch_size_p95": 3.0, "batch_size_mean": 1.7}
    (rec,) = recommend({"figures": figures})
    assert rec.evidence["max_batch_size"] == 64.0  # Settings.serve.max_batch_size


@pytest.mark.parametrize(("pct", "expected"), [(50.0, []), (86.0, ["memory_near_limit"])])
def test_memory_near_limit(pct: float, expected: list[str]) -> None:
    assert _rules({"figures": {"memory_percent": pct, "process_memory_bytes": 2e9}}) == expected


def test_every_rule_has_a_test_above() -> None:
    assert set(RULES) == {"batches_not_filling", "cache_hit_rate", "memory_near_limit", "tasks_too_small"}
