"""Plots of one habitat episode: atmosphere, power and actions over time, limits shaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from scaleforge.workloads.habitat.controllers import Controller
from scaleforge.workloads.habitat.env import LunarHabitatEnv
from scaleforge.workloads.habitat.physics import HabitatConfig

__all__ = ["plot_episode", "record_episode"]


def record_episode(
    policy: Controller, seed: int = 0, scenario: str = "nominal", config: HabitatConfig | None = None
) -> dict[str, np.ndarray]:
    """Run one episode and return its time series.

    Parameters
    ----------
    policy : Controller
    seed : int, default=0
    scenario : str, default="nominal"
    config : HabitatConfig, optional

    Returns
    -------
    dict of str to ndarray
        ``hour``, the raw ``info`` values per step, ``actions`` of shape (T, 4) and ``reward``.
    """
    env = LunarHabitatEnv(config)
    obs, _info0 = env.reset(seed=seed, options={"scenario": scenario})
    policy.reset(seed)
    rows: list[dict[str, Any]] = []
    actions = []
    rewards = []
    while True:
        a = policy.act(obs)
        obs, r, term, trunc, info = env.step(a)
        actions.append(a)
        rewards.append(float(r))
        rows.append(info)
        if term or trunc:
            break
    keys = ("ppo2_kpa", "ppco2_kpa", "pressure_kpa", "temperature_c", "soc", "water_kg", "health", "solar_kw")
    out = {k: np.array([row[k] for row in rows], dtype=np.float64) for k in keys}
    out["hour"] = np.arange(1, len(rows) + 1, dtype=np.float64)
    out["actions"] = np.array(actions, dtype=np.float64)
    out["reward"] = np.array(rewards)
    return out


def plot_episode(
    policy: Controller,
    path: str | Path,
    *,
    seed: int = 0,
    scenario: str = "nominal",
    config: HabitatConfig | None = None,
) -> Path:
    """Plot one episode to a PNG: ppO₂, ppCO₂, pressure, temperature, power and actions.

    Parameters
    ----------
    policy : Controller
    path : str or Path
        Output file (``.png``).
    seed : int, default=0
    scenario : str, default="nominal"
    config : HabitatConfig, optional

    Returns
    -------
    Path
        The written file.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cfg = config or HabitatConfig()
    ts = record_episode(policy, seed, scenario, cfg)
    day = ts["hour"] / 24.0
    fig, axes = plt.subplots(6, 1, figsize=(10, 13), sharex=True)
    panels = [
        ("ppo2_kpa", "ppO₂ (kPa)", (19.5, 23.1)),
        ("ppco2_kpa", "ppCO₂ (kPa)", (0.0, cfg.ppco2_max_kpa)),
        ("pressure_kpa", "total pressure (kPa)", (95.0, 106.0)),
        ("temperature_c", "temperature (°C)", (18.0, 27.0)),
    ]
    for ax, (key, label, (lo, hi)) in zip(axes, panels, strict=False):
        ax.axhspan(lo, hi, color="tab:green", alpha=0.15, label="limits")
        ax.plot(day, ts[key], color="tab:blue", lw=1.2)
        ax.set_ylabel(label)
        ax.legend(loc="upper right", fontsize=8)
    ax = axes[4]
    ax.plot(day, ts["soc"], label="battery SOC", color="tab:orange")
    ax.plot(day, ts["solar_kw"] / max(cfg.solar_peak_kw, 1e-9), label="solar / peak", color="gold")
    ax.plot(day, ts["health"], label="crew health", color="tab:red")
    ax.set_ylabel("power / health")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[5]
    for i, name in enumerate(("electrolysis", "scrubber", "heater", "shed")):
        ax.plot(day, ts["actions"][:, i], label=name, lw=1.0)
    ax.set_ylabel("action duty")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("mission day")
    ax.legend(loc="upper right", fontsize=8, ncol=4)
    survived = len(ts["hour"]) >= cfg.max_steps
    fig.suptitle(
        f"Lunar habitat — {policy.name}, scenario {scenario}, seed {seed}: "
        f"return {ts['reward'].sum():.0f}, {'crew survived' if survived else 'crew lost'}"
    )
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
