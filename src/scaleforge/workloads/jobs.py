"""The built-in workloads the job service can run, each with its parameter schema.

The job layer discovers them through the ``scaleforge.workloads`` entry-point
group (see ``pyproject.toml``), so ``scaleforge.jobs`` never imports a workload;
another package can offer its own workloads to a job service the same way.
Each adapter imports its workload package on call (so listing workloads costs
nothing) and returns a small JSON-ready summary; large artefacts stay in the
workloads' own caches.
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from scaleforge.jobs.builtins import to_jsonable
from scaleforge.jobs.registry import Workload

__all__ = [
    "WORKLOADS",
    "clustering_consensus",
    "habitat_evaluate",
    "operators_train",
    "pde_generate",
    "pde_poisson",
]


class _Params(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")


class PoissonParams(_Params):
    """Parameters of ``pde.poisson``."""

    resolution: int = pydantic.Field(
        32, ge=2, le=512, description="Squares per side of the unit-square mesh."
    )
    kappa: float = pydantic.Field(1.0, gt=0.0, le=1e6, description="Constant diffusivity.")
    f: float = pydantic.Field(1.0, ge=-1e6, le=1e6, description="Constant source term.")


class GenerateParams(_Params):
    """Parameters of ``pde.generate``."""

    dataset: Literal["darcy", "burgers"] = "darcy"
    n: int = pydantic.Field(16, ge=1, le=100_000, description="Number of samples.")
    resolution: int | None = pydantic.Field(None, ge=8, le=512)
    seed: int = pydantic.Field(0, ge=0, le=2**31 - 1)


class TrainParams(_Params):
    """Parameters of ``operators.train``."""

    dataset: Literal["darcy", "burgers"] = "darcy"
    head: Literal["laplace", "gaussian", "crps", "ensemble"] = "laplace"
    quick: bool = True
    epochs: int | None = pydantic.Field(None, ge=1, le=10_000)
    seed: int = pydantic.Field(0, ge=0, le=2**31 - 1)


class ConsensusParams(_Params):
    """Parameters of ``clustering.consensus``."""

    n_series: int = pydantic.Field(60, ge=8, le=10_000)
    length: int = pydantic.Field(120, ge=20, le=10_000)
    n_clusters: int = pydantic.Field(4, ge=2, le=20)
    n_runs: int = pydantic.Field(5, ge=2, le=100)
    reservoir_size: int = pydantic.Field(50, ge=5, le=2000)
    seed: int = pydantic.Field(0, ge=0, le=2**31 - 1)


class HabitatParams(_Params):
    """Parameters of ``habitat.evaluate``."""

    policy: Literal["random", "pid", "constant"] = "pid"
    seeds: int = pydantic.Field(5, ge=1, le=1000)
    scenarios: str = pydantic.Field("all", min_length=1, max_length=200)


def pde_poisson(resolution: int = 32, kappa: float = 1.0, f: float = 1.0) -> dict[str, Any]:
    """Solve -div(kappa grad u) = f on the unit square with u = 0 on the boundary (P1 FEM)."""
    from scaleforge.workloads import pde

    sol = pde.solve_poisson(pde.unit_square(resolution), kappa=kappa, f=f)
    u = sol.u
    return {"u_max": float(u.max()), "u_min": float(u.min()), "dofs": int(u.size)}


def pde_generate(
    dataset: str = "darcy", n: int = 16, resolution: int | None = None, seed: int = 0
) -> dict[str, Any]:
    """Generate a PDE data set (parallel, cached) and summarise it."""
    import numpy as np

    from scaleforge.workloads import pde

    data = pde.generate(dataset, n, resolution, seed=seed, progress=False)
    x, y = np.asarray(data.inputs), np.asarray(data.outputs)
    return {
        "dataset": dataset,
        "n": n,
        "x_shape": list(x.shape),
        "y_shape": list(y.shape),
        "y_mean": float(y.mean()),
        "y_std": float(y.std()),
    }


def operators_train(
    dataset: str = "darcy",
    head: str = "laplace",
    quick: bool = True,
    epochs: int | None = None,
    seed: int = 0,
) -> Any:
    """Train a probabilistic neural operator and report accuracy and calibration."""
    from scaleforge.workloads import operators

    result = operators.run_experiment(dataset, head, quick=quick, epochs=epochs, seed=seed, baselines=False)
    return to_jsonable(result)


def clustering_consensus(
    n_series: int = 60,
    length: int = 120,
    n_clusters: int = 4,
    n_runs: int = 5,
    reservoir_size: int = 50,
    seed: int = 0,
) -> dict[str, Any]:
    """Consensus reservoir clustering of AR(2) series; reports stability and agreement with the truth."""
    from sklearn.metrics import adjusted_rand_score

    from scaleforge.workloads.clustering import ReservoirClustering, consensus_clustering, make_ar2

    data = make_ar2(n_series, length, random_state=seed)
    est = ReservoirClustering(n_clusters=n_clusters, reservoir_size=reservoir_size, random_state=seed)
    res = consensus_clustering(est, data.X, n_runs=n_runs, executor="threads", random_state=seed)
    return {
        "stability": float(res.stability),
        "ari_vs_truth": float(adjusted_rand_score(data.y, res.labels)),
        "labels": res.labels.tolist(),
    }


def habitat_evaluate(policy: str = "pid", seeds: int = 5, scenarios: str = "all") -> Any:
    """Evaluate a habitat controller over seeds x scenarios with random and PID references."""
    from scaleforge.workloads.habitat.evaluate import evaluate

    report = evaluate(policy, seeds, scenarios, executor="threads", progress=False)
    return to_jsonable({"policy": report.policy, "scenarios": report.scenarios})


def _builtin(name: str, fn: Any, schema: type[pydantic.BaseModel]) -> Workload:
    doc = (fn.__doc__ or "").strip().splitlines()
    return Workload(
        name=name,
        target=f"{__name__}:{fn.__name__}",
        schema=schema,
        description=doc[0] if doc else "",
        builtin=True,
    )


WORKLOADS: tuple[Workload, ...] = (
    _builtin("clustering.consensus", clustering_consensus, ConsensusParams),
    _builtin("habitat.evaluate", habitat_evaluate, HabitatParams),
    _builtin("operators.train", operators_train, TrainParams),
    _builtin("pde.generate", pde_generate, GenerateParams),
    _builtin("pde.poisson", pde_poisson, PoissonParams),
)
