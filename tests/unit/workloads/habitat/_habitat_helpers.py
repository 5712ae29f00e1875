"""Shared helpers of the habitat tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from scaleforge.workloads.habitat.env import LunarHabitatEnv


def rollout(env: LunarHabitatEnv, actions: np.ndarray, seed: int, scenario: str = "nominal") -> list[Any]:
    """Observations, rewards and flags of one seeded episode under a fixed action sequence."""
    obs, _ = env.reset(seed=seed, options={"scenario": scenario})
    out: list[Any] = [obs]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append((obs, r, term, trunc, info["ppo2_kpa"], info["soc"]))
        if term or trunc:
            break
    return out
