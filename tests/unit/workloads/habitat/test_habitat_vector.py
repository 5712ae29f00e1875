"""The vectorised habitat equals N single envs step by step, and wraps Gymnasium's vector API."""

from __future__ import annotations

import numpy as np
import pytest

from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.habitat.env import LunarHabitatEnv
from scaleforge.workloads.habitat.scenarios import SCENARIOS
from scaleforge.workloads.habitat.vector import HabitatVectorEnv, VectorHabitat


@pytest.mark.parametrize("site", ["equatorial", "polar"])
def test_vectorised_equals_single_step_by_step(site: str, global_random_seed: int) -> None:
    n = 8
    scenarios = [SCENARIOS[i % len(SCENARIOS)] for i in range(n)]
    seeds = [global_random_seed + 10 * i for i in range(n)]
    vec = VectorHabitat(n, site=site)
    vobs, _ = vec.reset(seeds=seeds, scenarios=scenarios)
    envs = [LunarHabitatEnv(site=site) for _ in range(n)]
    sobs = np.stack(
        [
            e.reset(seed=s, options={"scenario": sc})[0]
            for e, s, sc in zip(envs, seeds, scenarios, strict=True)
        ]
    )
    np.testing.assert_array_equal(vobs, sobs)
    rng = np.random.default_rng(global_random_seed)
    done = np.zeros(n, dtype=bool)
    for _ in range(720):
        actions = rng.random((n, 4), dtype=np.float32)
        vobs, vrew, vterm, vtrunc, vinfo = vec.step(actions)
        for i, env in enumerate(envs):
            if done[i]:
                continue
            obs, rew, term, trunc, info = env.step(actions[i])
            np.testing.assert_array_equal(obs, vobs[i])
            assert rew == vrew[i]
            assert (term, trunc) == (vterm[i], vtrunc[i])
            for key, value in info.items():
                assert value == vinfo[key][i], key
            done[i] = term or trunc
        if done.all():
            break
    assert done.all()


def test_vector_bad_input() -> None:
    vec = VectorHabitat(3)
    vec.reset(seeds=0)
    with pytest.raises(InvalidParameterError, match=r"shape \(3, 4\)"):
        vec.step(np.zeros((2, 4)))
    with pytest.raises(InvalidParameterError, match="NaN"):
        vec.step(np.full((3, 4), np.nan))
    with pytest.raises(InvalidParameterError, match="one seed per habitat"):
        vec.reset(seeds=[1, 2])
    with pytest.raises(InvalidParameterError, match="'scenarios'"):
        vec.reset(seeds=0, scenarios="meteor")
    with pytest.raises(InvalidParameterError, match="'num_envs'"):
        VectorHabitat(0)


def test_gymnasium_vector_env_autoresets_next_step() -> None:
    envs = HabitatVectorEnv(num_envs=3, max_steps=4)
    obs, _ = envs.reset(seed=5)
    single = LunarHabitatEnv(max_steps=4)
    np.testing.assert_array_equal(obs[1], single.reset(seed=6)[0])
    a = np.full((3, 4), 0.5, dtype=np.float32)
    flags = []
    for _ in range(4):
        obs, rew, term, trunc, _ = envs.step(a)
        flags.append(trunc.copy())
    assert flags[-1].all() and not any(f.any() for f in flags[:-1])
    obs, rew, term, trunc, _ = envs.step(a)  # the autoreset step
    assert (rew == 0.0).all() and not trunc.any() and not term.any()
    assert (obs[:, 10] == -1.0).all()  # episode time back at its start
    assert envs.observation_space.shape == (3, 11) and envs.action_space.shape == (3, 4)
    envs.close()
