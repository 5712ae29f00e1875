"""PDE workload benchmark: P1 assembly vs scikit-fem, parallel Darcy generation, cached regeneration.

Run::

    .venv/bin/python benchmarks/bench_pde.py [--quick]

Measured side by side in one run, interleaved and repeated (medians):

* assembly of the same P1 stiffness matrix ``K(κ)`` at >= 10⁶ elements: ours
  (precomputed element data, ``K.data = P @ κ``) vs scikit-fem ``asm`` with a
  precomputed ``Basis`` (setup of both outside the timed region);
* Darcy 32² generation: ``pde.generate(..., executor=2 processes, cache=False)``
  through ``scaleforge.map`` vs a serial loop over ``sample_darcy``;
* regeneration: a fully cached re-run of the same 1,200 samples vs the cold run
  (fresh memory + disk cache each repetition; the re-run gets a new, empty memory
  tier over the same disk directory, as a new process would).

The last stdout line is ``{"bench": "pde", "metrics": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

_BENCH_KEY = bytes(range(32))  # HMAC key of the throw-away benchmark cache


def _time(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_assembly(n_side: int, repeats: int) -> dict[str, float]:
    from skfem import Basis, BilinearForm, ElementTriP1, asm
    from skfem.helpers import dot, grad

    from scaleforge.workloads.pde.mesh import p1_geometry, unit_square

    mesh = unit_square(n_side)
    n_el = mesh.t.shape[1]
    kappa = np.random.default_rng(0).uniform(1.0, 10.0, n_el)
    t0 = time.perf_counter()
    geom = p1_geometry(mesh)
    ours_setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    basis = Basis(mesh, ElementTriP1())
    skfem_setup = time.perf_counter() - t0

    @BilinearForm
    def form(u: Any, v: Any, w: Any) -> Any:
        return w.kappa * dot(grad(u), grad(v))

    k_ours = geom.stiffness(kappa)
    k_skfem = asm(form, basis, kappa=kappa[:, None])
    assert abs(k_ours - k_skfem).max() < 1e-9 * abs(k_skfem).max()  # same matrix
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(_time(lambda: geom.stiffness(kappa)))
        theirs.append(_time(lambda: asm(form, basis, kappa=kappa[:, None])))
    return {
        "elements": float(n_el),
        "ours_s": statistics.median(ours),
        "skfem_s": statistics.median(theirs),
        "ratio": statistics.median(t / o for t, o in zip(theirs, ours, strict=True)),
        "ours_setup_s": ours_setup,
        "skfem_setup_s": skfem_setup,
    }


def bench_generation(n: int, repeats: int) -> dict[str, float]:
    from scaleforge.compute.local import ProcessExecutor
    from scaleforge.workloads.pde.datasets import generate, sample_darcy

    serial, parallel = [], []
    with ProcessExecutor(max_workers=2) as ex:
        generate("darcy", 32, 32, executor=ex, cache=False, progress=False)  # warm the workers
        for _ in range(repeats):
            serial.append(_time(lambda: [sample_darcy(0, i, 32) for i in range(n)]))
            parallel.append(_time(lambda: generate("darcy", n, 32, executor=ex, cache=False, progress=False)))
    return {
        "n": float(n),
        "serial_s": statistics.median(serial),
        "parallel_s": statistics.median(parallel),
        "speedup": statistics.median(s / p for s, p in zip(serial, parallel, strict=True)),
        "parallel_per_s": n / statistics.median(parallel),
        "serial_per_s": n / statistics.median(serial),
    }


def _timed_block(block: tuple[int, int]) -> float:
    from scaleforge.workloads.pde.datasets import DATASETS, solve_block

    params = {k: v for k, v in DATASETS["darcy"].items() if k != "resolution"}
    t0 = time.perf_counter()
    solve_block("darcy", 0, block[0], block[1], 32, params)
    return time.perf_counter() - t0


def bench_concurrency(n: int) -> dict[str, float]:
    """How many blocks ran at once: summed in-task time / wall time (2 = both workers busy).

    Separates the map's overhead from the machine: if concurrency is ~2 but the
    speedup is not, each worker got less CPU than the serial loop did (a shared,
    loaded machine or a CPU quota), not idle workers.
    """
    from scaleforge.compute.local import ProcessExecutor
    from scaleforge.compute.map import map as sf_map
    from scaleforge.workloads.pde.datasets import split_blocks

    blocks = split_blocks(0, n)
    with ProcessExecutor(max_workers=2) as ex:
        sf_map(_timed_block, blocks[:4], executor=ex, progress=False)
        t0 = time.perf_counter()
        durations = sf_map(_timed_block, blocks, executor=ex, progress=False)
        wall = time.perf_counter() - t0
    return {"concurrency": sum(durations) / wall, "in_task_s": sum(durations), "wall_s": wall}


def bench_regenerate(n: int, repeats: int) -> dict[str, float]:
    from scaleforge.cache.disk import DiskTier
    from scaleforge.cache.memory import MemoryTier
    from scaleforge.cache.tiered import TieredCache
    from scaleforge.compute.local import ProcessExecutor
    from scaleforge.settings import config_context
    from scaleforge.workloads.pde.datasets import generate

    cold, warm = [], []
    with ProcessExecutor(max_workers=2) as ex, tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            path = Path(tmp) / f"c{r}"

            def tiers(path: Path = path) -> TieredCache:
                return TieredCache([MemoryTier("1GB"), DiskTier(path, key=_BENCH_KEY)])

            with config_context(cache=tiers()):
                cold.append(_time(lambda: generate("darcy", n, 32, executor=ex, progress=False)))
            # a re-run as a new process sees it: empty memory tier, entries on disk
            with config_context(cache=tiers()):
                t0 = time.perf_counter()
                ds = generate("darcy", n, 32, executor=ex, progress=False)
                warm.append(time.perf_counter() - t0)
                assert ds.stats["computed_blocks"] == 0, ds.stats
    return {
        "n": float(n),
        "cold_s": statistics.median(cold),
        "warm_s": statistics.median(warm),
        "fraction": statistics.median(w / c for w, c in zip(warm, cold, strict=True)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and samples")
    args = parser.parse_args()
    repeats = 3 if args.quick else 5
    n_gen = 400 if args.quick else 1200

    asm_r = bench_assembly(708, repeats)  # 2 * 708² = 1,002,528 elements
    gen_r = bench_generation(n_gen, repeats)
    reg_r = bench_regenerate(1200, repeats)
    conc = bench_concurrency(n_gen)

    rows = [
        (
            f"P1 assembly, {asm_r['elements']:.0f} elements",
            "ours",
            asm_r["ours_s"],
            "scikit-fem asm",
            asm_r["skfem_s"],
            asm_r["ratio"],
        ),
        (
            f"Darcy 32², {gen_r['n']:.0f} samples",
            "map, 2 procs",
            gen_r["parallel_s"],
            "serial loop",
            gen_r["serial_s"],
            gen_r["speedup"],
        ),
        (
            "Darcy 32², 1200 samples",
            "cached re-run",
            reg_r["warm_s"],
            "cold run",
            reg_r["cold_s"],
            1 / reg_r["fraction"],
        ),
    ]
    print(f"{'case':32} {'scaleforge':>14} {'median s':>9} {'alternative':>15} {'median s':>9} {'ratio':>8}")
    for case, a, ta, b, tb, ratio in rows:
        print(f"{case:32} {a:>14} {ta:9.4f} {b:>15} {tb:9.4f} {ratio:8.2f}")
    print(
        f"setup (once per mesh): ours {asm_r['ours_setup_s']:.2f} s, scikit-fem Basis {asm_r['skfem_setup_s']:.2f} s"
    )
    print(
        f"map concurrency on 2 workers: {conc['concurrency']:.2f} "
        f"(in-task {conc['in_task_s']:.2f} s over {conc['wall_s']:.2f} s wall); "
        f"serial loop {gen_r['serial_per_s']:.0f} samples/s"
    )
    metrics = {
        "assembly_vs_skfem": round(asm_r["ratio"], 2),
        "assembly_melem_per_s": round(asm_r["elements"] / asm_r["ours_s"] / 1e6, 2),
        "generate_darcy32_per_s": round(gen_r["parallel_per_s"], 1),
        "generate_speedup": round(gen_r["speedup"], 2),
        "regenerate_fraction": round(reg_r["fraction"], 4),
    }
    print(json.dumps({"bench": "pde", "metrics": metrics}))


if __name__ == "__main__":
    main()
