"""Lunar-habitat life-support control: a Gymnasium environment, baselines, RL and evaluation at scale.

Importing this subpackage registers ``scaleforge/LunarHabitat-v0`` with Gymnasium
(and its vectorised form for ``gymnasium.make_vec``). Without the import, use
``gymnasium.make("scaleforge.workloads.habitat:scaleforge/LunarHabitat-v0")``.

- :class:`LunarHabitatEnv` — hourly ECLSS control, 30-day episodes, four scenarios
  (:data:`SCENARIOS`); physics and sources in :mod:`.physics`.
- :class:`VectorHabitat` / :class:`HabitatVectorEnv` — N habitats as numpy
  arrays, equal step by step to N single envs.
- :class:`RandomController`, :class:`ConstantController`, :class:`PIDController`
  — baselines; PPO and SAC (stable-baselines3) in :mod:`.rl`.
- :func:`evaluate` — (seed, scenario) pairs through :func:`scaleforge.map`,
  cached per episode, with the normalised score against random and PID.

Examples
--------
>>> import gymnasium
>>> import scaleforge.workloads.habitat as habitat
>>> env = gymnasium.make("scaleforge/LunarHabitat-v0")
>>> env.observation_space.shape, env.action_space.shape
((11,), (4,))
"""

from __future__ import annotations

import gymnasium

from scaleforge.workloads.habitat.controllers import (
    ConstantController,
    Controller,
    PIDController,
    RandomController,
)
from scaleforge.workloads.habitat.env import LunarHabitatEnv
from scaleforge.workloads.habitat.evaluate import EpisodeResult, EvaluationReport, evaluate, run_episode
from scaleforge.workloads.habitat.physics import ENV_VERSION, HabitatConfig
from scaleforge.workloads.habitat.scenarios import SCENARIOS
from scaleforge.workloads.habitat.vector import HabitatVectorEnv, VectorHabitat

__all__ = [
    "ENV_ID",
    "ENV_VERSION",
    "SCENARIOS",
    "ConstantController",
    "Controller",
    "EpisodeResult",
    "EvaluationReport",
    "HabitatConfig",
    "HabitatVectorEnv",
    "LunarHabitatEnv",
    "PIDController",
    "RandomController",
    "VectorHabitat",
    "evaluate",
    "register_envs",
    "run_episode",
]

#: The Gymnasium id of the environment.
ENV_ID = "scaleforge/LunarHabitat-v0"


def register_envs() -> None:
    """Register ``scaleforge/LunarHabitat-v0`` with Gymnasium (idempotent; done on import)."""
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(
            id=ENV_ID,
            entry_point="scaleforge.workloads.habitat.env:LunarHabitatEnv",
            vector_entry_point="scaleforge.workloads.habitat.vector:HabitatVectorEnv",
        )


register_envs()
