"""Benchmark of the probabilistic neural operators against the GP and ridge baselines.

Runs the standard evaluation (Burgers n=128 and Darcy 32², 1,000 train / 200 test;
``--quick``: 200 / 50 and small models) with the LUNO-LA head by default, fits the
baselines on the same data in the same run, runs the active-learning comparison,
prints a table, and ends with one JSON line::

    {"bench": "operators", "metrics": {"burgers_rel_l2", "burgers_cov90", "burgers_crps_vs_gp",
                                       "darcy_rel_l2", "darcy_cov90", "al_vs_random", "train_s"}}

Usage::

    python benchmarks/bench_operators.py [--quick] [--head laplace] [--skip-al] [--out DIR]
        [--acquisition epistemic|total|random] [--no-diverse] [--al-seeds N]

``al_vs_random`` is the final test error of uncertainty-driven acquisition
(default: summed *epistemic* variance, diverse batches) divided by that of random
acquisition at the same number of labels, averaged over ``--al-seeds`` seeds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def _dump(path: Path, obj: dict[str, Any]) -> None:
    # intermediate results survive a crash or an interrupted run
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o), indent=1)
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small data and models (minutes, for CI)")
    parser.add_argument("--head", default="laplace", choices=["gaussian", "crps", "ensemble", "laplace"])
    parser.add_argument("--burgers-head", default=None, help="head for Burgers (default: --head)")
    parser.add_argument("--skip-al", action="store_true", help="skip the active-learning comparison")
    parser.add_argument(
        "--acquisition",
        default="epistemic",
        choices=["epistemic", "total", "random"],
        help="active-learning score (default: epistemic variance with diverse batches)",
    )
    parser.add_argument(
        "--no-diverse", action="store_true", help="top-k acquisition without the diversity penalty"
    )
    parser.add_argument(
        "--al-seeds",
        type=int,
        default=1,
        help="active-learning repetitions (seeds seed..seed+N-1); ratio is their mean",
    )
    parser.add_argument("--out", type=Path, default=Path("bench-operators"), help="plots and models")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from scaleforge.workloads.operators.experiment import AL_PRESETS, run_experiment

    t_start = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    for name in ("burgers", "darcy"):
        head = args.burgers_head or args.head if name == "burgers" else args.head
        results[name] = run_experiment(
            name, head, quick=args.quick, out_dir=args.out / name, seed=args.seed, progress=False
        )
        print(f"{name}: trained {head} in {results[name]['train_s']:.1f} s", flush=True)
        _dump(args.out / f"{name}.json", results[name])

    al_ratio: float | None = None
    al: dict[str, Any] | None = None
    if not args.skip_al:
        from scaleforge.workloads.operators import plots
        from scaleforge.workloads.operators.active import run_active_learning

        runs = []
        for s in range(args.seed, args.seed + max(1, args.al_seeds)):
            res = run_active_learning(
                head=args.head,
                seed=s,
                acquisition=args.acquisition,
                diverse=not args.no_diverse,
                **AL_PRESETS[args.quick],
            )
            runs.append(res)
            print(f"active learning seed {s}: {args.acquisition}/random {res.ratio:.3f}", flush=True)
        res = runs[0]
        plots.plot_active_learning(res.labels, res.errors, args.out / "active-learning.png")
        al_ratio = sum(r.ratio for r in runs) / len(runs)
        al = {**res.to_dict(), "ratios": [r.ratio for r in runs], "al_vs_random": al_ratio}
        _dump(args.out / "active-learning.json", al)

    cols = ["rel_l2", "nll", "crps", "cov50", "cov90", "cov95", "width90"]
    print()
    print(f"{'data':8} {'model':22} " + " ".join(f"{c:>9}" for c in cols) + f" {'fit_s':>8}")
    for name, r in results.items():
        rows = [(f"FNO-{r['head']}", r["metrics"], r["train_s"])]
        rows += [(k, v, v["fit_s"]) for k, v in r["baselines"].items()]
        for model, m, secs in rows:
            print(f"{name:8} {model:22} " + " ".join(f"{m[c]:9.4g}" for c in cols) + f" {secs:8.1f}")
        m = r["metrics"]
        print(
            f"{name:8} {'FNO mean + homosc. σ':22} {m['rel_l2']:9.4g} {m['homoscedastic_nll']:9.4g} "
            f"{m['homoscedastic_crps']:9.4g} {'':>9} {m['homoscedastic_cov90']:9.4g}"
        )
    for name, r in results.items():
        gp = r["baselines"]["gp"]
        print(
            f"{name}: rel L2 ratio FNO/GP {r['metrics']['rel_l2'] / gp['rel_l2']:.3f}, "
            f"CRPS ratio FNO/GP {r['metrics']['crps'] / gp['crps']:.3f}"
        )
    if al is not None:
        print(
            f"active learning ({al['labels']} labels, seed {args.seed}): {al['acquisition']}"
            f"{' diverse' if al['diverse'] else ''} {[f'{e:.4f}' for e in al['errors']['variance']]}, "
            f"random {[f'{e:.4f}' for e in al['errors']['random']]}; "
            f"final-error ratio per seed {[f'{r:.3f}' for r in al['ratios']]}, mean {al_ratio:.3f}"
        )
    print(f"total {time.perf_counter() - t_start:.1f} s (machine shared: timings are indicative)")

    b, d = results["burgers"], results["darcy"]
    metrics = {
        "burgers_rel_l2": b["metrics"]["rel_l2"],
        "burgers_cov90": b["metrics"]["cov90"],
        "burgers_crps_vs_gp": b["metrics"]["crps"] / b["baselines"]["gp"]["crps"],
        "darcy_rel_l2": d["metrics"]["rel_l2"],
        "darcy_cov90": d["metrics"]["cov90"],
        "al_vs_random": al_ratio,
        "train_s": b["train_s"] + d["train_s"],
    }
    print(json.dumps({"bench": "operators", "metrics": metrics}))


if __name__ == "__main__":
    main()
