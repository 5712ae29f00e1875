"""Compute layer benchmark: scaleforge.map against joblib, concurrent.futures, Ray and Dask.

Run ``python benchmarks/bench_compute.py [--quick]``. Cases run interleaved and
repeated; the table shows medians and median ratios; the last stdout line is
``{"bench": "compute", "metrics": {...}}``.

Metrics (targets from issue 3):
  tiny_tasks_per_s       10,000 no-op tasks, default backend, warm pool (>= 200,000)
  tiny_vs_joblib         our rate / joblib's (loky, n_jobs=2, warm)      (>= 3)
  ms1_efficiency         2,000 x 1 ms CPU tasks: ideal / our time on 2 workers (>= 0.85)
  arg100mb_ms_per_call   10 tasks sharing one 100 MB array, ms per task  (<= 30)
  ray_tiny_vs_ray_naive  10,000 tiny tasks: our Ray rate / one Ray task per item (>= 50)
  rerun_1pct_fraction    2,000 cached 5 ms tasks: re-run with 1 % new / cold run (<= 0.05)
  cached_cold_overhead   2,000 cached 5 ms tasks: cold run / the same tasks uncached (-> 1.0)
  pool_start_s           first result from a fresh default executor       (<= 0.5)

Also reported: ``ms1_efficiency_joblib`` (joblib's efficiency in the same rounds)
and ``dask_tiny_vs_dask_naive``. The serial time that defines "ideal" is
measured in every round, interleaved with the parallel runs, so machine load
moves both alike.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import scaleforge as sf
from scaleforge.compute.registry import get_executor, shutdown_executors


def noop(x: int) -> int:
    return x


def busy(x: int, seconds: float = 1e-3) -> int:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return x


def row_sum(i: int, arr: np.ndarray) -> float:
    return float(arr[i * 1000 : (i + 1) * 1000].sum())


def busy5(x: int) -> int:
    return busy(x, 5e-3)


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleave(cases: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Run every case once per round, ``repeats`` rounds; return median seconds."""
    samples: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            samples[name].append(timed(fn))
    return {k: statistics.median(v) for k, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (under 3 minutes)")
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--no-dask", action="store_true")
    opts = parser.parse_args()
    reps = 3 if opts.quick else 7
    rows: list[tuple[str, str, float, str]] = []
    metrics: dict[str, float] = {}

    # ---- pool start: a fresh default executor, first result --------------------------------
    starts, pp_starts = [], []
    for _ in range(reps):
        shutdown_executors()
        starts.append(timed(lambda: sf.map(noop, [1])))

        def fresh_pp() -> None:
            with cf.ProcessPoolExecutor(2) as pp:
                pp.submit(noop, 1).result()

        pp_starts.append(timed(fresh_pp))
    metrics["pool_start_s"] = statistics.median(starts)
    rows += [
        ("pool_start", "scaleforge processes", metrics["pool_start_s"], "s"),
        ("pool_start", "ProcessPoolExecutor", statistics.median(pp_starts), "s"),
    ]
    ex = get_executor()  # warm default pool, reused below

    # ---- tiny tasks -----------------------------------------------------------------------
    import joblib

    n_tiny = 10_000
    items = list(range(n_tiny))
    par = joblib.Parallel(n_jobs=2)
    par(joblib.delayed(noop)(i) for i in range(10))  # warm loky
    pp = cf.ProcessPoolExecutor(2)
    list(pp.map(noop, range(10)))
    sf.map(noop, items)
    med = interleave(
        {
            "scaleforge": lambda: sf.map(noop, items),
            "joblib": lambda: par(joblib.delayed(noop)(i) for i in items),
            "ProcessPool(chunksize=1)": lambda: list(pp.map(noop, items)),
            "ProcessPool(chunksize=500)": lambda: list(pp.map(noop, items, chunksize=500)),
        },
        reps,
    )
    for k, v in med.items():
        rows.append(("tiny 10k", k, n_tiny / v, "tasks/s"))
    metrics["tiny_tasks_per_s"] = n_tiny / med["scaleforge"]
    metrics["tiny_vs_joblib"] = med["joblib"] / med["scaleforge"]

    # ---- 1 ms tasks -----------------------------------------------------------------------
    n_ms = 2_000
    med = interleave(
        {
            "serial x200": lambda: [busy(i) for i in range(200)],
            "scaleforge": lambda: sf.map(busy, range(n_ms)),
            "joblib": lambda: par(joblib.delayed(busy)(i) for i in range(n_ms)),
        },
        reps,
    )
    ideal = n_ms * med.pop("serial x200") / 200 / ex.num_workers
    for k, v in med.items():
        rows.append(("ms1 x2000 efficiency", k, ideal / v, "ideal/actual"))
    metrics["ms1_efficiency"] = ideal / med["scaleforge"]
    metrics["ms1_efficiency_joblib"] = ideal / med["joblib"]

    # ---- 100 MB shared argument -----------------------------------------------------------
    big = np.ones(100 * 10**6 // 8)

    def pp_big() -> None:
        futs = [pp.submit(row_sum, i, big) for i in range(10)]
        [f.result() for f in futs]

    med = interleave(
        {
            "scaleforge": lambda: sf.map(row_sum, range(10), arr=big),
            "ProcessPool": pp_big,
        },
        max(1, reps - 1),
    )
    for k, v in med.items():
        rows.append(("100MB arg x10", k, v / 10 * 1e3, "ms/task"))
    metrics["arg100mb_ms_per_call"] = med["scaleforge"] / 10 * 1e3
    pp.shutdown()

    # ---- cache-aware re-run -----------------------------------------------------------------
    from scaleforge.cache.decorators import cached
    from scaleforge.cache.disk import DiskTier

    n_c = 2_000
    samples: dict[str, list[float]] = {"uncached": [], "cold": [], "rerun": []}
    for _ in range(reps):  # interleaved: uncached, cold (fresh cache), re-run with 1 % new items
        samples["uncached"].append(timed(lambda: sf.map(busy5, range(n_c))))
        with tempfile.TemporaryDirectory() as tmp:

            @cached(cache=DiskTier(Path(tmp) / "c", max_bytes="1GB"))
            def sim(x: int) -> float:
                busy(x, 5e-3)
                return x * 0.5

            samples["cold"].append(timed(lambda: sf.map(sim, range(n_c))))
            samples["rerun"].append(timed(lambda: sf.map(sim, range(n_c + n_c // 100))))
    uncached, cold, rerun = (statistics.median(samples[k]) for k in ("uncached", "cold", "rerun"))
    metrics["rerun_1pct_fraction"] = rerun / cold
    metrics["cached_cold_overhead"] = cold / uncached
    rows += [
        ("cached 2000x5ms", "uncached", uncached, "s"),
        ("cached 2000x5ms", "cold run", cold, "s"),
        ("cached 2000x5ms", "re-run +1%", rerun, "s"),
        ("cached 2000x5ms", "cold / uncached", cold / uncached, "ratio"),
    ]

    # ---- Ray --------------------------------------------------------------------------------
    if not opts.no_ray:
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        from scaleforge.compute.ray import RayExecutor

        rex = RayExecutor()
        rnoop = ray.remote(noop)
        n_naive = 2_000 if opts.quick else n_tiny
        ray.get([rnoop.remote(i) for i in range(100)])
        sf.map(noop, range(100), executor=rex)
        med = interleave(
            {
                "scaleforge on ray": lambda: sf.map(noop, items, executor=rex),
                "ray one task per item": lambda: ray.get([rnoop.remote(i) for i in range(n_naive)]),
            },
            max(1, reps - 1),
        )
        ours = n_tiny / med["scaleforge on ray"]
        naive = n_naive / med["ray one task per item"]
        rows += [
            ("ray tiny", "scaleforge on ray", ours, "tasks/s"),
            ("ray tiny", "ray naive", naive, "tasks/s"),
        ]
        metrics["ray_tiny_vs_ray_naive"] = ours / naive
        rex.shutdown()
        ray.shutdown()

    # ---- Dask -------------------------------------------------------------------------------
    if not opts.no_dask:
        from distributed import Client, LocalCluster

        from scaleforge.compute.dask import DaskExecutor

        with (
            LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", host="127.0.0.1"
            ) as cluster,
            Client(cluster) as client,
        ):
            dex = DaskExecutor(client=client)
            n_naive = 1_000 if opts.quick else n_tiny
            sf.map(noop, range(100), executor=dex)
            med = interleave(
                {
                    "scaleforge on dask": lambda: sf.map(noop, items, executor=dex),
                    "dask client.map per item": lambda: client.gather(
                        client.map(noop, range(n_naive), pure=False)
                    ),
                },
                max(1, reps - 1),
            )
            ours = n_tiny / med["scaleforge on dask"]
            naive = n_naive / med["dask client.map per item"]
            rows += [
                ("dask tiny", "scaleforge on dask", ours, "tasks/s"),
                ("dask tiny", "dask naive", naive, "tasks/s"),
            ]
            metrics["dask_tiny_vs_dask_naive"] = ours / naive

    shutdown_executors()
    print(f"{'case':24s} {'contender':28s} {'median':>14s}  unit")
    for case, who, value, unit in rows:
        print(f"{case:24s} {who:28s} {value:14,.3f}  {unit}")
    targets = {
        "tiny_tasks_per_s": (">=", 200_000),
        "tiny_vs_joblib": (">=", 3),
        "ms1_efficiency": (">=", 0.85),
        "arg100mb_ms_per_call": ("<=", 30),
        "ray_tiny_vs_ray_naive": (">=", 50),
        "rerun_1pct_fraction": ("<=", 0.05),
        "pool_start_s": ("<=", 0.5),
    }
    for name, (op, goal) in targets.items():
        if name in metrics:
            ok = metrics[name] >= goal if op == ">=" else metrics[name] <= goal
            print(f"  {name:24s} {metrics[name]:12,.3f}  target {op} {goal}  {'met' if ok else 'MISSED'}")
    print(json.dumps({"bench": "compute", "metrics": {k: round(v, 4) for k, v in metrics.items()}}))


if __name__ == "__main__":
    main()
