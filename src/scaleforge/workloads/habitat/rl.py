"""PPO and SAC (stable-baselines3) for the habitat: training with checkpoints and resume, sweeps.

We do not write our own RL algorithms: stable-baselines3 provides them. This
module wires them to the habitat — a [-1, 1]-rescaled action space (what SB3
recommends), ``Monitor``-wrapped vectorised training envs, periodic
checkpoints, resume from the latest checkpoint, an evaluation callback that
records the learning curve — and runs hyperparameter sweeps as one
:func:`scaleforge.map` over configurations.

The documented standard run (BENCHMARKS.md)::

    scaleforge habitat train --algo ppo --steps 300000
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from scaleforge._validation import check_choice, check_number
from scaleforge.errors import InvalidParameterError, MissingDependencyError
from scaleforge.workloads.habitat.physics import HabitatConfig
from scaleforge.workloads.habitat.scenarios import SCENARIOS, resolve_scenarios

__all__ = [
    "ALGORITHMS",
    "DEFAULT_HYPERPARAMS",
    "SweepResult",
    "TrainResult",
    "latest_checkpoint",
    "make_env",
    "sweep",
    "train",
]

logger = logging.getLogger(__name__)

ALGORITHMS = ("ppo", "sac")
#: Defaults per algorithm (PPO: 4 envs x 1024 steps per update, i.e. ~6 episodes of 720 h per update).
DEFAULT_HYPERPARAMS: dict[str, dict[str, Any]] = {
    "ppo": {
        "learning_rate": 3e-4,
        "n_steps": 1024,
        "batch_size": 256,
        "n_epochs": 10,
        "gamma": 0.995,
        "gae_lambda": 0.95,
        "clip_range": 0.2,
        "ent_coef": 0.0,
    },
    "sac": {
        "learning_rate": 3e-4,
        "buffer_size": 200_000,
        "batch_size": 256,
        "gamma": 0.995,
        "learning_starts": 2000,
    },
}
_CKPT = re.compile(r"_(\d+)_steps\.zip$")


@dataclasses.dataclass(slots=True)
class TrainResult:
    """What :func:`train` produced.

    Attributes
    ----------
    algo : str
    model_path : Path
        The final model (``.zip``), usable as ``evaluate(model_path, ...)``.
    best_path : Path or None
        The model with the best learning-curve evaluation (``<algo>_best.zip``;
        evaluation seeds 10000+ are disjoint from :func:`evaluate`'s defaults).
    total_steps : int
        Environment steps the model has seen (including resumed ones).
    curve : list of (int, float, float)
        Learning curve: (steps, mean evaluation return, survival rate).
    resumed_from : Path or None
    elapsed_s : float
    """

    algo: str
    model_path: Path
    best_path: Path | None
    total_steps: int
    curve: list[tuple[int, float, float]]
    resumed_from: Path | None
    elapsed_s: float


@dataclasses.dataclass(frozen=True, slots=True)
class SweepResult:
    """One configuration of a :func:`sweep`.

    Attributes
    ----------
    hyperparams : dict
    model_path : str
    mean_return : float
        On the evaluation seeds (deterministic policy).
    survival_rate : float
    """

    hyperparams: dict[str, Any]
    model_path: str
    mean_return: float
    survival_rate: float


def _require_sb3() -> Any:
    try:
        import stable_baselines3
    except ImportError as exc:  # pragma: no cover - in the default install
        raise MissingDependencyError(
            "Habitat RL training needs stable-baselines3 and torch: pip install 'scaleforge[workloads]'."
        ) from exc
    return stable_baselines3


def make_env(scenario: str = "nominal", config: HabitatConfig | None = None) -> Any:
    """A training env: the habitat with actions rescaled to [-1, 1], wrapped in SB3's ``Monitor``.

    Parameters
    ----------
    scenario : str, default="nominal"
    config : HabitatConfig, optional

    Returns
    -------
    gymnasium.Env
    """
    import numpy as np
    from gymnasium.wrappers import RescaleAction
    from stable_baselines3.common.monitor import Monitor

    from scaleforge.workloads.habitat.env import LunarHabitatEnv

    low = np.full(4, -1.0, dtype=np.float32)
    return Monitor(RescaleAction(LunarHabitatEnv(config, scenario=scenario), low, -low))


def _env_factory(scenario: str, config: HabitatConfig | None) -> Callable[[], Any]:
    return lambda: make_env(scenario, config)


def latest_checkpoint(directory: str | Path, algo: str | None = None) -> Path | None:
    """The checkpoint with the most steps in ``directory`` (``<algo>_<steps>_steps.zip``), or None.

    Parameters
    ----------
    directory : str or Path
    algo : str, optional
        Only this algorithm's checkpoints.

    Returns
    -------
    Path or None
    """
    d = Path(directory)
    if not d.is_dir():
        return None
    best: tuple[int, Path] | None = None
    for p in d.glob(f"{algo or '*'}_*_steps.zip"):
        m = _CKPT.search(p.name)
        if m and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), p)
    return None if best is None else best[1]


def _curve_callback(
    sb3: Any,
    eval_envs: list[Any],
    every: int,
    episodes: int,
    curve: list[tuple[int, float, float]],
    best_path: Path,
) -> Any:
    base = sb3.common.callbacks.BaseCallback

    class _Curve(base):  # type: ignore[misc, valid-type]
        """Evaluate the deterministic policy every ``every`` steps; record the curve, keep the best model."""

        def __init__(self) -> None:
            super().__init__()
            self._next = 0
            self._best = max((c[1] for c in curve), default=-float("inf"))

        def _on_step(self) -> bool:
            if self.num_timesteps >= self._next:
                self._next = self.num_timesteps + every
                returns, survived = [], []
                for ep in range(episodes):
                    eval_env = eval_envs[ep % len(eval_envs)]
                    obs, _ = eval_env.reset(seed=10_000 + ep)
                    total, done, trunc = 0.0, False, False
                    while not (done or trunc):
                        action, _ = self.model.predict(obs, deterministic=True)
                        obs, r, done, trunc, _ = eval_env.step(action)
                        total += float(r)
                    returns.append(total)
                    survived.append(bool(trunc))
                mean = sum(returns) / len(returns)
                curve.append((int(self.num_timesteps), mean, sum(survived) / len(survived)))
                if mean > self._best:
                    self._best = mean
                    self.model.save(best_path)
                logger.info(
                    "step %d: eval return %.1f, survival %.2f", self.num_timesteps, mean, curve[-1][2]
                )
            return True

    return _Curve()


def train(
    algo: str = "ppo",
    steps: int = 300_000,
    *,
    scenario: str = "nominal",
    output_dir: str | Path = "habitat-runs",
    n_envs: int = 4,
    seed: int = 0,
    hyperparams: dict[str, Any] | None = None,
    checkpoint_every: int = 50_000,
    eval_every: int = 20_000,
    eval_episodes: int = 5,
    resume: bool = True,
    config: HabitatConfig | None = None,
    num_threads: int | None = 1,
) -> TrainResult:
    """Train PPO or SAC on the habitat, with checkpoints, resume and a learning curve.

    Parameters
    ----------
    algo : {"ppo", "sac"}, default="ppo"
    steps : int, default=300_000
        Total environment steps to reach (resumed steps count).
    scenario : str, default="nominal"
        Training scenario; ``"all"`` or a comma-separated list trains on a mix
        (training env ``i`` runs scenario ``i mod len(list)``; the learning
        curve cycles through them).
    output_dir : str or Path, default="habitat-runs"
        Checkpoints go to ``output_dir/checkpoints``, the model to
        ``output_dir/<algo>_final.zip``, the best model of the learning curve to
        ``output_dir/<algo>_best.zip``, the curve to ``output_dir/curve.json``.
    n_envs : int, default=4
        Parallel training envs (PPO; SAC uses 1).
    seed : int, default=0
    hyperparams : dict, optional
        Overrides of :data:`DEFAULT_HYPERPARAMS`.
    checkpoint_every : int, default=50_000
        Steps between checkpoints.
    eval_every : int, default=20_000
        Steps between learning-curve evaluations (0 disables).
    eval_episodes : int, default=5
    resume : bool, default=True
        Continue from the latest checkpoint in ``output_dir`` if there is one.
    config : HabitatConfig, optional
    num_threads : int or None, default=1
        torch intra-op threads (None leaves torch's setting alone).

    Returns
    -------
    TrainResult

    Raises
    ------
    InvalidParameterError
        For an unknown algorithm or scenario, or bad step counts.
    """
    owner = "habitat.rl.train"
    check_choice(algo, "algo", owner, ALGORITHMS)
    if not isinstance(scenario, str):
        raise InvalidParameterError(
            f"The 'scenario' parameter of {owner} must be a scenario name, 'all' or a comma-separated list. "
            f"Got {scenario!r} instead."
        )
    names = [s.strip() for s in scenario.split(",")] if scenario != "all" else list(SCENARIOS)
    for name in names:
        check_choice(name, "scenario", owner, (*SCENARIOS, "all"))
    names = list(resolve_scenarios(names))
    check_number(steps, "steps", owner, minimum=1, integer=True)
    check_number(n_envs, "n_envs", owner, minimum=1, integer=True)
    check_number(checkpoint_every, "checkpoint_every", owner, minimum=1, integer=True)
    check_number(eval_every, "eval_every", owner, minimum=0, integer=True)
    check_number(eval_episodes, "eval_episodes", owner, minimum=1, integer=True)
    params = {**DEFAULT_HYPERPARAMS[algo], **(hyperparams or {})}
    sb3 = _require_sb3()
    import torch
    from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback
    from stable_baselines3.common.vec_env import DummyVecEnv

    if num_threads is not None:
        torch.set_num_threads(num_threads)
    started = time.perf_counter()
    out = Path(output_dir)
    ckpt_dir = out / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    k = n_envs if algo == "ppo" else 1
    venv = DummyVecEnv([_env_factory(names[i % len(names)], config) for i in range(k)])
    venv.seed(seed)
    cls = sb3.PPO if algo == "ppo" else sb3.SAC
    resumed = latest_checkpoint(ckpt_dir, algo) if resume else None
    curve: list[tuple[int, float, float]] = []
    curve_file = out / "curve.json"
    if resumed is not None:
        model = cls.load(resumed, env=venv, device="cpu")
        if curve_file.is_file():
            curve = [(int(a), float(b), float(c)) for a, b, c in json.loads(curve_file.read_text())]
        logger.info("resuming %s from %s (%d steps)", algo, resumed, model.num_timesteps)
    else:
        try:
            model = cls("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **params)
        except TypeError as exc:
            raise InvalidParameterError(
                f"Invalid hyperparameters for {algo}: {exc}. Known defaults: {sorted(params)}."
            ) from exc
    callbacks: list[Any] = [
        CheckpointCallback(save_freq=max(1, checkpoint_every // k), save_path=str(ckpt_dir), name_prefix=algo)
    ]
    if eval_every:
        eval_envs = [make_env(name, config) for name in names]
        callbacks.append(
            _curve_callback(sb3, eval_envs, eval_every, eval_episodes, curve, out / f"{algo}_best.zip")
        )
    remaining = steps - int(model.num_timesteps)
    if remaining > 0:
        model.learn(
            total_timesteps=remaining, callback=CallbackList(callbacks), reset_num_timesteps=resumed is None
        )
    final = out / f"{algo}_final.zip"
    best = out / f"{algo}_best.zip"
    model.save(final)
    model.save(ckpt_dir / f"{algo}_{int(model.num_timesteps)}_steps.zip")
    curve_file.write_text(json.dumps(curve))
    venv.close()
    return TrainResult(
        algo=algo,
        model_path=final,
        best_path=best if best.is_file() else None,
        total_steps=int(model.num_timesteps),
        curve=curve,
        resumed_from=resumed,
        elapsed_s=time.perf_counter() - started,
    )


def _sweep_task(
    hyperparams: dict[str, Any],
    *,
    algo: str,
    steps: int,
    output_dir: str,
    scenario: str,
    eval_seeds: list[int],
) -> SweepResult:
    from scaleforge.workloads.habitat.evaluate import SB3Policy, run_episode

    tag = "-".join(f"{k}={v}" for k, v in sorted(hyperparams.items())) or "default"
    safe = re.sub(r"[^A-Za-z0-9=._-]", "_", tag)
    result = train(
        algo,
        steps,
        scenario=scenario,
        output_dir=Path(output_dir) / safe,
        hyperparams=hyperparams,
        eval_every=0,
        resume=False,
    )
    policy = SB3Policy(result.model_path)
    names = resolve_scenarios("all" if scenario == "all" else scenario.split(","))
    eps = [run_episode(policy, s, name) for name in names for s in eval_seeds]
    return SweepResult(
        hyperparams=dict(hyperparams),
        model_path=str(result.model_path),
        mean_return=sum(e.episode_return for e in eps) / len(eps),
        survival_rate=sum(e.survived for e in eps) / len(eps),
    )


def sweep(
    configurations: Sequence[dict[str, Any]],
    *,
    algo: str = "ppo",
    steps: int = 100_000,
    output_dir: str | Path = "habitat-sweep",
    scenario: str = "nominal",
    eval_seeds: Sequence[int] = (100, 101, 102, 103, 104),
    executor: Any = None,
) -> list[SweepResult]:
    """Hyperparameter sweep: one training + evaluation per configuration, as one ``scaleforge.map``.

    Parameters
    ----------
    configurations : sequence of dict
        Hyperparameter overrides, e.g. ``[{"learning_rate": 1e-4}, {"learning_rate": 3e-4}]``.
    algo : {"ppo", "sac"}, default="ppo"
    steps : int, default=100_000
        Training steps per configuration.
    output_dir : str or Path, default="habitat-sweep"
    scenario : str, default="nominal"
    eval_seeds : sequence of int
        Evaluation seeds (kept apart from training seeds).
    executor : str or Executor, optional
        Passed to :func:`scaleforge.map` (processes by default; Ray for a cluster).

    Returns
    -------
    list of SweepResult
        In the order of ``configurations``.

    Raises
    ------
    InvalidParameterError
        For an empty or malformed list of configurations.
    """
    from scaleforge.compute.map import map as sf_map

    if not configurations or not all(isinstance(c, dict) for c in configurations):
        raise InvalidParameterError(
            "The 'configurations' parameter of sweep must be a non-empty list of dicts of hyperparameters."
        )
    check_choice(algo, "algo", "habitat.rl.sweep", ALGORITHMS)
    results: list[SweepResult] = sf_map(
        _sweep_task,
        list(configurations),
        executor=executor,
        algo=algo,
        steps=steps,
        output_dir=str(output_dir),
        scenario=scenario,
        eval_seeds=list(eval_seeds),
    )
    return results
