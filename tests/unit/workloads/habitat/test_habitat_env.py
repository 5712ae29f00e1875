"""LunarHabitatEnv: Gymnasium conformance, bad input, reproducibility and scenarios."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from _habitat_helpers import rollout
from gymnasium.error import ResetNeeded
from gymnasium.utils.env_checker import check_env

import scaleforge.workloads.habitat as habitat
from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.habitat.env import LunarHabitatEnv
from scaleforge.workloads.habitat.physics import HabitatConfig
from scaleforge.workloads.habitat.scenarios import SCENARIOS, resolve_scenarios


def test_check_env_passes_without_warnings() -> None:
    # filterwarnings=error: any env-checker warning fails the test
    check_env(LunarHabitatEnv(), skip_render_check=True)
    check_env(LunarHabitatEnv(scenario="dust_storm", site="polar"), skip_render_check=True)


def test_registered_with_gymnasium() -> None:
    env = gymnasium.make(habitat.ENV_ID)
    assert isinstance(env.unwrapped, LunarHabitatEnv)
    obs, info = env.reset(seed=1, options={"scenario": "slow_leak"})
    assert env.observation_space.contains(obs)
    assert info["scenario"] == "slow_leak"
    envs = gymnasium.make_vec(habitat.ENV_ID, num_envs=3, vectorization_mode="vector_entry_point")
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (3, 11)


def test_episode_is_720_hours_and_truncates() -> None:
    env = LunarHabitatEnv()
    env.reset(seed=0)
    a = np.array([0.47, 0.6, 0.35, 0.0], dtype=np.float32)
    steps, truncated = 0, False
    while not truncated:
        _, _, terminated, truncated, _ = env.step(a)
        steps += 1
        if terminated:
            break
    assert steps <= 720
    env2 = LunarHabitatEnv(max_steps=5)
    env2.reset(seed=0)
    flags = [env2.step(a)[3] for _ in range(5)]
    assert flags == [False, False, False, False, True]


@pytest.mark.parametrize(
    "action",
    [
        np.array([0.5, 0.5, 0.5], dtype=np.float32),
        np.zeros((2, 4), dtype=np.float32),
        np.array([0.5, np.nan, 0.5, 0.5], dtype=np.float32),
        np.array([0.5, 0.5, 1.5, 0.5], dtype=np.float32),
        np.array([-0.1, 0.5, 0.5, 0.5]),
        "full power",
        [0.1, 0.2, None, 0.3],
    ],
)
def test_bad_actions_raise_clear_errors(action: object) -> None:
    env = LunarHabitatEnv()
    env.reset(seed=0)
    with pytest.raises(InvalidParameterError, match=r"action of LunarHabitatEnv.step"):
        env.step(action)  # type: ignore[arg-type]
    # the env is still usable after a rejected action
    env.step(np.full(4, 0.5, dtype=np.float32))


def test_lists_and_float64_actions_are_accepted() -> None:
    env = LunarHabitatEnv()
    env.reset(seed=0)
    o1 = env.step([0.5, 0.5, 0.5, 0.0])[0]  # type: ignore[arg-type]
    env.reset(seed=0)
    o2 = env.step(np.array([0.5, 0.5, 0.5, 0.0]))[0]
    np.testing.assert_array_equal(o1, o2)


def test_step_before_reset_and_after_termination_raise_reset_needed() -> None:
    env = LunarHabitatEnv()
    with pytest.raises(ResetNeeded, match="before reset"):
        env.step(np.zeros(4, dtype=np.float32))
    env.reset(seed=0)
    off = np.zeros(4, dtype=np.float32)  # no O2, no scrubber, no heat: the crew is lost
    terminated = False
    for _ in range(720):
        _, reward, terminated, _truncated, info = env.step(off)
        if terminated:
            break
    assert terminated and info["health"] == 0.0
    assert float(reward) < -90.0  # death penalty
    with pytest.raises(ResetNeeded, match="after the episode ended"):
        env.step(off)
    env.reset(seed=0)
    env.step(off)  # usable again


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"crew": -1}, "'crew'"),
        ({"crew": 2.5}, "'crew'"),
        ({"volume_m3": 0}, "'volume_m3'"),
        ({"battery_kwh": float("nan")}, "'battery_kwh'"),
        ({"charge_efficiency": 1.2}, "'charge_efficiency'"),
        ({"site": "mars"}, "'site'"),
        ({"env_day_c": -50.0}, "'env_night_c'"),
        ({"cabin_volume": 100}, "Unknown habitat configuration"),
        ({"scenario": "meteor"}, "'scenario'"),
        ({"render_mode": "human"}, "'render_mode'"),
    ],
)
def test_invalid_configuration_raises(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        LunarHabitatEnv(**kwargs)  # type: ignore[arg-type]


def test_unknown_scenario_and_option_at_reset() -> None:
    env = LunarHabitatEnv()
    with pytest.raises(InvalidParameterError, match="must be one of"):
        env.reset(seed=0, options={"scenario": "meteor"})
    with pytest.raises(InvalidParameterError, match="unknown keys"):
        env.reset(seed=0, options={"senario": "nominal"})
    with pytest.raises(InvalidParameterError, match="'scenarios'"):
        resolve_scenarios("nominal,meteor")
    assert resolve_scenarios("all") == SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_seeded_episodes_are_bit_reproducible(scenario: str, global_random_seed: int) -> None:
    rng = np.random.default_rng(global_random_seed)
    actions = rng.random((200, 4), dtype=np.float32)
    state = np.random.get_state()
    a = rollout(LunarHabitatEnv(), actions, seed=global_random_seed, scenario=scenario)
    b = rollout(LunarHabitatEnv(), actions, seed=global_random_seed, scenario=scenario)
    assert np.random.get_state()[1].tolist() == state[1].tolist()  # no global random state used
    np.testing.assert_array_equal(a[0], b[0])
    for x, y in zip(a[1:], b[1:], strict=True):
        np.testing.assert_array_equal(x[0], y[0])
        assert x[1:] == y[1:]
    c = rollout(LunarHabitatEnv(), actions, seed=global_random_seed + 1, scenario=scenario)
    assert not np.array_equal(a[0], c[0])


def test_scenarios_share_the_initial_state_and_change_the_events() -> None:
    env = LunarHabitatEnv()
    obs = {s: env.reset(seed=7, options={"scenario": s})[0] for s in SCENARIOS}
    draws = {}
    for s in SCENARIOS:
        env.reset(seed=7, options={"scenario": s})
        draws[s] = env.draw
    for s in SCENARIOS:
        np.testing.assert_array_equal(obs[s], obs["nominal"])
    assert draws["nominal"].storm_factor == 1.0 and draws["nominal"].leak_rate_h == 0.0  # type: ignore[union-attr]
    assert 0.1 <= draws["dust_storm"].storm_factor <= 0.35  # type: ignore[union-attr]
    assert 0.3 <= draws["scrubber_failure"].scrub_capacity <= 0.6  # type: ignore[union-attr]
    assert draws["slow_leak"].leak_rate_h > 0.0  # type: ignore[union-attr]


def test_observation_matches_info_and_limits_flags() -> None:
    env = LunarHabitatEnv()
    _, info = env.reset(seed=3)
    assert 20.5 <= info["ppo2_kpa"] <= 22.0
    assert 0.1 <= info["ppco2_kpa"] <= 0.25
    obs, _, _, _, info = env.step(np.array([0.47, 0.6, 0.35, 0.0], dtype=np.float32))
    assert obs[0] == np.float32((info["ppo2_kpa"] - 21.3) / 2.0)
    assert obs[3] == np.float32((info["temperature_c"] - 22.5) / 5.0)
    assert not any(info[f"{q}_out"] for q in ("o2", "co2", "pressure", "temperature"))


def test_config_object_and_overrides() -> None:
    cfg = HabitatConfig(crew=6)
    env = LunarHabitatEnv(cfg, volume_m3=150.0)
    assert env.config.crew == 6 and env.config.volume_m3 == 150.0
    with pytest.raises(InvalidParameterError, match="HabitatConfig"):
        LunarHabitatEnv(config={"crew": 4})  # type: ignore[arg-type]
