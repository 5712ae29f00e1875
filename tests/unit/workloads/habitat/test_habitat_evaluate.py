"""evaluate(): through scaleforge.map equals a serial loop; episodes are cached; scores are normalised."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scaleforge.cache.memory import MemoryTier
from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.habitat.controllers import ConstantController, PIDController, RandomController
from scaleforge.workloads.habitat.evaluate import evaluate, resolve_policy, run_episode

SCENARIOS = ("nominal", "dust_storm")
SEEDS = [0, 1, 2]


def test_evaluation_through_map_equals_serial_loop() -> None:
    policy = ConstantController((0.5, 0.6, 0.4, 0.2))
    report = evaluate(policy, SEEDS, SCENARIOS, executor="processes", cache=False)
    serial = {sc: [run_episode(policy, s, sc) for s in SEEDS] for sc in SCENARIOS}
    rand = {sc: [run_episode(RandomController(), s, sc) for s in SEEDS] for sc in SCENARIOS}
    pid = {sc: [run_episode(PIDController(), s, sc) for s in SEEDS] for sc in SCENARIOS}
    assert report.episodes == [e for sc in SCENARIOS for e in serial[sc]]
    for sc in SCENARIOS:
        summary = report.scenarios[sc]
        returns = np.array([e.episode_return for e in serial[sc]])
        r_rand = np.mean([e.episode_return for e in rand[sc]])
        r_pid = np.mean([e.episode_return for e in pid[sc]])
        assert summary.mean_return == returns.mean()
        assert summary.std_return == returns.std()
        assert summary.survival_rate == np.mean([e.survived for e in serial[sc]])
        assert summary.normalised_score == pytest.approx(
            (returns.mean() - r_rand) / (r_pid - r_rand), rel=1e-12
        )
        for q in ("o2", "co2", "pressure", "temperature"):
            assert summary.hours_out_of_limits[q] == np.mean([e.hours_out[q] for e in serial[sc]])


def test_references_score_zero_and_one_and_results_are_cached() -> None:
    tier = MemoryTier(max_bytes="64MB")
    first = evaluate("pid", [0, 1], "nominal", executor="threads", cache=tier)
    assert first.scenarios["nominal"].normalised_score == pytest.approx(1.0)
    assert first.cache_hits == 0
    again = evaluate("random", [0, 1], "nominal", executor="threads", cache=tier)
    assert again.scenarios["nominal"].normalised_score == pytest.approx(0.0)
    assert again.cache_hits == 4  # random and PID episodes of the first call
    assert again.scenarios["nominal"].pid_return == first.scenarios["nominal"].mean_return
    more = evaluate("pid", [0, 1, 2], "nominal", executor="threads", cache=tier)
    assert more.cache_hits == 4  # only seed 2 is new (for pid and random)
    json.dumps(more.to_dict())


def test_changing_the_policy_misses_the_cache() -> None:
    tier = MemoryTier(max_bytes="64MB")
    evaluate(PIDController(), [0], "nominal", executor="threads", cache=tier)
    other = evaluate(PIDController(temp_setpoint_c=21.5), [0], "nominal", executor="threads", cache=tier)
    assert other.cache_hits == 2  # the references hit, the changed controller does not


def test_bad_arguments() -> None:
    with pytest.raises(InvalidParameterError, match="'scenarios'"):
        evaluate("pid", 2, "meteor", executor="threads", cache=False)
    with pytest.raises(InvalidParameterError, match="'seeds'"):
        evaluate("pid", 0, "nominal", executor="threads", cache=False)
    with pytest.raises(InvalidParameterError, match="is not a file"):
        resolve_policy("no/such/model.zip")
    with pytest.raises(InvalidParameterError, match="'policy'"):
        resolve_policy(42)  # type: ignore[arg-type]
