"""Evaluation at scale: (seed, scenario) episodes through ``scaleforge.map``, cached per episode.

One call evaluates the policy **and** the random and PID references on the
same (seed, scenario) pairs, in one map, so the normalised score
``(R - R_random) / (R_PID - R_random)`` (D4RL-style) always compares like with
like. Each episode is a ``@cached`` task keyed by (policy checksum, seed,
scenario, env version, habitat config): re-running an evaluation, or adding
seeds, computes only the new episodes; references are shared between runs.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from scaleforge.errors import InvalidParameterError, MissingDependencyError
from scaleforge.monitor import metrics
from scaleforge.workloads.habitat.controllers import Controller, PIDController, RandomController
from scaleforge.workloads.habitat.env import QUANTITIES, LunarHabitatEnv
from scaleforge.workloads.habitat.physics import ENV_VERSION, HabitatConfig
from scaleforge.workloads.habitat.scenarios import resolve_scenarios

__all__ = [
    "EpisodeResult",
    "EvaluationReport",
    "SB3Policy",
    "ScenarioSummary",
    "evaluate",
    "resolve_policy",
    "run_episode",
]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class EpisodeResult:
    """Outcome of one episode.

    Attributes
    ----------
    policy : str
        Policy name.
    seed : int
    scenario : str
    episode_return : float
        Sum of rewards.
    survived : bool
        The crew was alive after ``max_steps`` hours.
    steps : int
        Hours simulated.
    hours_out : dict of str to int
        Hours out of limits per quantity (``o2``, ``co2``, ``pressure``, ``temperature``).
    energy_kwh : float
        Energy drawn from the power system.
    brownout_hours : int
        Hours in which the battery could not cover the loads.
    """

    policy: str
    seed: int
    scenario: str
    episode_return: float
    survived: bool
    steps: int
    hours_out: dict[str, int]
    energy_kwh: float
    brownout_hours: int


@dataclasses.dataclass(frozen=True, slots=True)
class ScenarioSummary:
    """Aggregates of one scenario (means over episodes).

    Attributes
    ----------
    scenario : str
    n_episodes : int
    survival_rate : float
    mean_return, std_return : float
    hours_out_of_limits : dict of str to float
        Mean hours out of limits per episode, per quantity.
    energy_kwh : float
        Mean energy per episode.
    random_return, pid_return : float
        The references' mean returns on the same seeds.
    normalised_score : float
        ``(R - R_random) / (R_PID - R_random)``; NaN when the references tie.
    """

    scenario: str
    n_episodes: int
    survival_rate: float
    mean_return: float
    std_return: float
    hours_out_of_limits: dict[str, float]
    energy_kwh: float
    random_return: float
    pid_return: float
    normalised_score: float


@dataclasses.dataclass(slots=True)
class EvaluationReport:
    """Result of :func:`evaluate`.

    Attributes
    ----------
    policy : str
        Name of the evaluated policy.
    checksum : str
        Its content checksum (part of the cache keys).
    env_version : str
    scenarios : dict of str to ScenarioSummary
    episodes : list of EpisodeResult
        The evaluated policy's episodes (references excluded).
    reference_episodes : list of EpisodeResult
        The random and PID episodes on the same pairs.
    cache_hits : int
        Episodes answered by the cache.
    elapsed_s : float
    """

    policy: str
    checksum: str
    env_version: str
    scenarios: dict[str, ScenarioSummary]
    episodes: list[EpisodeResult]
    reference_episodes: list[EpisodeResult]
    cache_hits: int = 0
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (episodes included).

        Returns
        -------
        dict
        """
        return {
            "policy": self.policy,
            "checksum": self.checksum,
            "env_version": self.env_version,
            "scenarios": {k: dataclasses.asdict(v) for k, v in self.scenarios.items()},
            "episodes": [dataclasses.asdict(e) for e in self.episodes],
            "cache_hits": self.cache_hits,
            "elapsed_s": self.elapsed_s,
        }


class SB3Policy(Controller):
    """A saved stable-baselines3 PPO or SAC model (``.zip``) used as a controller.

    Parameters
    ----------
    path : str or Path
        The model file written by :func:`scaleforge.workloads.habitat.rl.train`.

    Raises
    ------
    InvalidParameterError
        If the file does not exist.

    Notes
    -----
    The model is loaded lazily, once per process, so instances pickle cheaply
    to map workers. Models trained on the [-1, 1]-rescaled action space of
    :func:`~scaleforge.workloads.habitat.rl.make_env` are mapped back to [0, 1].
    """

    name = "sb3"

    def __init__(self, path: str | Path) -> None:
        p = Path(path)
        if not p.is_file():
            raise InvalidParameterError(
                f"The policy path {str(path)!r} is not a file. Pass 'random', 'pid', or the .zip written by "
                "`scaleforge habitat train`."
            )
        self.path = p.resolve()
        self.name = p.stem
        self._digest = hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest()

    def get_params(self) -> dict[str, Any]:
        """``{"blake2b": content digest of the model file}``."""
        return {"blake2b": self._digest}

    def act(self, obs: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
        """Deterministic action of the model, in [0, 1]."""
        model = _load_model(str(self.path), self._digest)
        action, _ = model.predict(obs, deterministic=True)
        a = np.asarray(action, dtype=np.float64)
        if float(model.action_space.low.min()) < 0.0:
            a = (a + 1.0) / 2.0
        return np.clip(a, 0.0, 1.0).astype(np.float32)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "name": self.name, "_digest": self._digest}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


@functools.lru_cache(maxsize=4)
def _load_model(path: str, digest: str) -> Any:
    try:
        import zipfile

        from stable_baselines3 import PPO, SAC
    except ImportError as exc:  # pragma: no cover - in the default install
        raise MissingDependencyError(
            "Loading a trained habitat policy needs stable-baselines3: pip install 'scaleforge[workloads]'."
        ) from exc
    with zipfile.ZipFile(path) as zf:
        data = zf.read("data").decode()
    cls = SAC if "sac.policies" in data.lower() or "SACPolicy" in data else PPO
    return cls.load(path, device="cpu")


def resolve_policy(policy: str | Path | Controller, config: HabitatConfig | None = None) -> Controller:
    """Turn ``"random"``, ``"pid"``, ``"constant"``, a model path or a Controller into a Controller.

    Parameters
    ----------
    policy : str, Path or Controller
        The policy.
    config : HabitatConfig, optional
        Passed to the PID controller.

    Returns
    -------
    Controller

    Raises
    ------
    InvalidParameterError
        For an unknown name or a path that does not exist.
    """
    from scaleforge.workloads.habitat.controllers import ConstantController

    if isinstance(policy, Controller):
        return policy
    if isinstance(policy, str) and policy in ("random", "pid", "constant"):
        if policy == "random":
            return RandomController()
        if policy == "pid":
            return PIDController(config)
        return ConstantController()
    if isinstance(policy, (str, Path)):
        return SB3Policy(policy)
    raise InvalidParameterError(
        f"The 'policy' parameter must be 'random', 'pid', 'constant', a path to a trained model, or a "
        f"Controller. Got {type(policy).__name__} instead."
    )


def run_episode(
    policy: Controller, seed: int, scenario: str, config: HabitatConfig | None = None
) -> EpisodeResult:
    """Run one seeded episode of ``policy`` in ``scenario``.

    Parameters
    ----------
    policy : Controller
        Reset with ``seed`` first, so stochastic controllers repeat too.
    seed : int
        Seed of the env's ``reset``.
    scenario : str
        Scenario name.
    config : HabitatConfig, optional

    Returns
    -------
    EpisodeResult
    """
    env = LunarHabitatEnv(config)
    obs, _ = env.reset(seed=seed, options={"scenario": scenario})
    policy.reset(seed)
    total = 0.0
    energy = 0.0
    out = dict.fromkeys(QUANTITIES, 0)
    brownout = 0
    steps = 0
    while True:
        obs, reward, terminated, truncated, info = env.step(policy.act(obs))
        total += float(reward)
        energy += info["energy_kwh"]
        brownout += info["brownout"]
        for q in QUANTITIES:
            out[q] += info[f"{q}_out"]
        steps += 1
        if terminated or truncated:
            break
    return EpisodeResult(
        policy=policy.name,
        seed=seed,
        scenario=scenario,
        episode_return=total,
        survived=bool(truncated),
        steps=steps,
        hours_out=out,
        energy_kwh=energy,
        brownout_hours=brownout,
    )


def _episode_task(
    task: tuple[str, int, str], *, config: HabitatConfig, env_version: str, policies: dict[str, Controller]
) -> EpisodeResult:
    """One (policy checksum, seed, scenario) episode; ``policies`` is not part of the cache key."""
    checksum, seed, scenario = task
    return run_episode(policies[checksum], seed, scenario, config)


_CACHED: dict[int, Any] = {}


def _cached_task(cache: Any) -> Any:
    """``_episode_task`` behind ``@cached`` on ``cache`` (None: the default tiers)."""
    key = id(cache)
    fn = _CACHED.get(key)
    if fn is None:
        from scaleforge.cache.decorators import cached

        fn = cached(cache=cache, version=ENV_VERSION, ignore=["policies"])(_episode_task)
        _CACHED[key] = (fn, cache)  # keep the tier alive so its id stays unique
        return fn
    return fn[0]


def _summarise(
    scenario: str, mine: list[EpisodeResult], rand: list[EpisodeResult], pid: list[EpisodeResult]
) -> ScenarioSummary:
    ret = np.array([e.episode_return for e in mine])
    r_rand = float(np.mean([e.episode_return for e in rand]))
    r_pid = float(np.mean([e.episode_return for e in pid]))
    mean = float(ret.mean())
    denom = r_pid - r_rand
    return ScenarioSummary(
        scenario=scenario,
        n_episodes=len(mine),
        survival_rate=float(np.mean([e.survived for e in mine])),
        mean_return=mean,
        std_return=float(ret.std()),
        hours_out_of_limits={q: float(np.mean([e.hours_out[q] for e in mine])) for q in QUANTITIES},
        energy_kwh=float(np.mean([e.energy_kwh for e in mine])),
        random_return=r_rand,
        pid_return=r_pid,
        normalised_score=(mean - r_rand) / denom if abs(denom) > 1e-12 else math.nan,
    )


def _record_evaluation(
    policy: str, n_policy: int, n_tasks: int, cache_hits: int, summaries: dict[str, ScenarioSummary]
) -> None:
    """Count evaluated episodes (policy and references, computed or cached) and export the scores."""
    episodes = metrics.counter(
        "scaleforge_habitat_episodes_evaluated_total",
        "Habitat episodes evaluated, by evaluated policy and role (policy or reference)",
        ["policy", "role"],
    )
    episodes.labels(policy=policy, role="policy").inc(n_policy)
    if n_tasks > n_policy:
        episodes.labels(policy=policy, role="reference").inc(n_tasks - n_policy)
    if cache_hits:
        metrics.counter(
            "scaleforge_habitat_episode_cache_hits_total",
            "Habitat episodes answered by the cache, by evaluated policy",
            ["policy"],
        ).labels(policy=policy).inc(cache_hits)
    score = metrics.gauge(
        "scaleforge_habitat_normalised_score",
        "Latest normalised score (R - R_random) / (R_PID - R_random), by policy and scenario",
        ["policy", "scenario"],
        multiprocess_mode="mostrecent",
    )
    survival = metrics.gauge(
        "scaleforge_habitat_survival_rate",
        "Latest survival rate of the evaluated policy, by policy and scenario",
        ["policy", "scenario"],
        multiprocess_mode="mostrecent",
    )
    for name, summary in summaries.items():
        if math.isfinite(summary.normalised_score):
            score.labels(policy=policy, scenario=name).set(summary.normalised_score)
        survival.labels(policy=policy, scenario=name).set(summary.survival_rate)


def evaluate(
    policy: str | Path | Controller,
    seeds: int | Iterable[int] = 50,
    scenarios: str | Sequence[str] = "all",
    *,
    executor: Any = None,
    cache: bool | Any = True,
    config: HabitatConfig | None = None,
    progress: bool | None = None,
) -> EvaluationReport:
    """Evaluate a policy over seeds x scenarios, with random and PID references, via ``scaleforge.map``.

    Parameters
    ----------
    policy : str, Path or Controller
        ``"random"``, ``"pid"``, ``"constant"``, a trained model ``.zip``, or a Controller.
    seeds : int or iterable of int, default=50
        An int ``n`` means seeds ``0 .. n-1``.
    scenarios : str or sequence of str, default="all"
        ``"all"``, a comma-separated string, or names.
    executor : str or Executor, optional
        Passed to :func:`scaleforge.map` (default: settings; local processes).
    cache : bool or Tier, default=True
        Cache each episode (``True``: the default tiers; a Tier: that tier; ``False``: no cache).
    config : HabitatConfig, optional
        Habitat design (part of the cache key).
    progress : bool, optional
        Progress bar of the map.

    Returns
    -------
    EvaluationReport
        Per-scenario survival rate, hours out of limits per quantity, mean
        return ± std, energy, and the normalised score.

    Raises
    ------
    InvalidParameterError
        For an unknown policy or scenario, or no seeds.

    Examples
    --------
    >>> report = evaluate("pid", seeds=2, scenarios="nominal", executor="threads", cache=False)
    >>> report.scenarios["nominal"].normalised_score
    1.0
    """
    from scaleforge.compute.map import map as sf_map

    started = time.perf_counter()
    cfg = config if config is not None else HabitatConfig()
    if isinstance(seeds, bool):
        raise InvalidParameterError(
            f"The 'seeds' parameter of evaluate must be an int or a list of ints. Got {seeds!r}."
        )
    if isinstance(seeds, int):
        if seeds < 1:
            raise InvalidParameterError(
                f"The 'seeds' parameter of evaluate must be >= 1. Got {seeds} instead."
            )
        seed_list = list(range(seeds))
    else:
        seed_list = [int(s) for s in seeds]
        if not seed_list:
            raise InvalidParameterError("The 'seeds' parameter of evaluate is empty; pass e.g. seeds=50.")
    names = resolve_scenarios(scenarios)
    main = resolve_policy(policy, cfg)
    refs = {"random": RandomController(), "pid": PIDController(cfg)}
    policies = {main.checksum(): main, **{c.checksum(): c for c in refs.values()}}
    order = [main.checksum(), refs["random"].checksum(), refs["pid"].checksum()]
    tasks = [(ck, s, sc) for ck in dict.fromkeys(order) for sc in names for s in seed_list]
    if cache is False:
        fn: Any = _episode_task
    else:
        fn = _cached_task(None if cache is True else cache)
    report = sf_map(
        fn,
        tasks,
        executor=executor,
        progress=progress,
        on_error="collect",
        config=cfg,
        env_version=ENV_VERSION,
        policies=policies,
    )
    report.raise_first()
    by_task: dict[tuple[str, int, str], EpisodeResult] = dict(zip(tasks, report.results, strict=True))
    summaries: dict[str, ScenarioSummary] = {}
    for sc in names:
        pick = {ck: [by_task[(ck, s, sc)] for s in seed_list] for ck in order}
        summaries[sc] = _summarise(sc, pick[order[0]], pick[order[1]], pick[order[2]])
    mine = [by_task[(order[0], s, sc)] for sc in names for s in seed_list]
    ref_eps = [by_task[(ck, s, sc)] for ck in dict.fromkeys(order[1:]) for sc in names for s in seed_list]
    elapsed = time.perf_counter() - started
    logger.info(
        "evaluated %s on %d episodes in %.1f s (%d cached)", main.name, len(tasks), elapsed, report.cache_hits
    )
    _record_evaluation(main.name, len(mine), len(tasks), report.cache_hits, summaries)
    return EvaluationReport(
        policy=main.name,
        checksum=order[0],
        env_version=ENV_VERSION,
        scenarios=summaries,
        episodes=mine,
        reference_episodes=ref_eps,
        cache_hits=report.cache_hits,
        elapsed_s=elapsed,
    )
