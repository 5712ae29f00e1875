"""Clustering workload benchmark: reservoir methods against raw, spectral and DTW k-means.

Run ``python benchmarks/bench_clustering.py [--quick] [--scale-series N]``. Every
section runs its methods interleaved (the order rotates each round) and
repeated over seeds; tables show medians (and median ratios where they make
sense). The last stdout line is ``{"bench": "clustering", "metrics": {...}}``.

Metrics (targets from issue 8):
  ar2_esn_ari                 AR(2), N=400, T=500: ESN (model space) ARI, median over seeds   (>= 0.7)
  ar2_raw_ari                 same data, k-means on the raw series              (esn >= raw + 0.5)
  ar2_spectral_ari            same data, k-means on the Welch log-periodogram   (printed next to ESN)
  profiles_ari_gap_to_oracle  spread 20: oracle ARI - k-means ARI, median       (<= 0.02)
  drift_delay                 samples from the mixture change to the detection, median (<= 500)
  drift_false_alarms          detections on stationary 20,000-sample streams, summed  (0)
  series_per_s                T=500 series labelled per second through scaleforge.map, 2 workers
                              (N=1e5 within 5 minutes needs >= 333)
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

import scaleforge as sf
from scaleforge.workloads.clustering import (
    ProfileClustering,
    ReservoirClustering,
    StreamingClustering,
    load_trace,
    make_ar2,
    make_drifting_stream,
    make_profiles,
    run_at_scale,
)
from scaleforge.workloads.clustering.baselines import (
    dtw_kmeans,
    periodogram_kmeans,
    raw_kmeans,
    spectral_kmeans,
)
from scaleforge.workloads.clustering.datasets import oracle_labels
from scaleforge.workloads.clustering.scale import _ar2_chunk

Method = Callable[[np.ndarray, int, int], np.ndarray]


def reservoir(**params: Any) -> Method:
    def fit(X: np.ndarray, k: int, seed: int) -> np.ndarray:
        return ReservoirClustering(n_clusters=k, random_state=seed, **params).fit(X).labels_

    return fit


SERIES_METHODS: dict[str, Method] = {
    "esn": reservoir(),
    "esn_states": reservoir(representation="states"),
    "lsm": reservoir(method="lsm"),
    "hybrid": reservoir(method="hybrid"),
    "raw": lambda X, k, s: raw_kmeans(X, k, random_state=s),
    "spectral": lambda X, k, s: spectral_kmeans(X, k, random_state=s),
    "periodogram": lambda X, k, s: periodogram_kmeans(X, k, random_state=s),
}


def rotate(names: list[str], r: int) -> list[str]:
    r %= len(names)
    return names[r:] + names[:r]


def med(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def print_table(title: str, rows: dict[str, dict[str, float]], columns: list[str]) -> None:
    print(f"\n{title}")
    print(f"  {'method':<14}" + "".join(f"{c:>16}" for c in columns))
    for name, row in rows.items():
        print(f"  {name:<14}" + "".join(f"{row.get(c, float('nan')):>16.3f}" for c in columns))


def bench_series(
    label: str, make: Callable[[int], Any], methods: dict[str, Method], seeds: list[int]
) -> dict[str, dict[str, float]]:
    """Run every method on the data of every seed, interleaved; return medians per method."""
    ari: dict[str, list[float]] = {m: [] for m in methods}
    nmi: dict[str, list[float]] = {m: [] for m in methods}
    secs: dict[str, list[float]] = {m: [] for m in methods}
    for r, seed in enumerate(seeds):
        data = make(seed)
        k = int(np.unique(data.y).size)
        for name in rotate(list(methods), r):
            t0 = time.perf_counter()
            labels = methods[name](data.X, k, seed)
            secs[name].append(time.perf_counter() - t0)
            ari[name].append(adjusted_rand_score(data.y, labels))
            nmi[name].append(normalized_mutual_info_score(data.y, labels))
    rows = {
        m: {
            "ari_median": med(ari[m]),
            "ari_min": min(ari[m]),
            "ari_max": max(ari[m]),
            "nmi_median": med(nmi[m]),
            "seconds": med(secs[m]),
        }
        for m in methods
    }
    print_table(label, rows, ["ari_median", "ari_min", "ari_max", "nmi_median", "seconds"])
    return rows


def bench_profiles(seeds: list[int]) -> float:
    gaps, aris, oracles = [], [], []
    for seed in seeds:
        data = make_profiles(1000, spread=20.0, random_state=seed)
        oracle = adjusted_rand_score(data.y, oracle_labels(data.X))
        ari = adjusted_rand_score(data.y, ProfileClustering(4, random_state=seed).fit(data.X).labels_)
        gaps.append(oracle - ari)
        aris.append(ari)
        oracles.append(oracle)
    print_table(
        "Profiles, N=1000, spread 20 (k-means n_init=10 vs oracle nearest-true-centre)",
        {
            "kmeans": {
                "ari_median": med(aris),
                "oracle_median": med(oracles),
                "gap_median": med(gaps),
                "gap_max": max(gaps),
            }
        },
        ["ari_median", "oracle_median", "gap_median", "gap_max"],
    )
    return med(gaps)


def bench_streaming(drift_seeds: list[int], stationary_seeds: list[int]) -> tuple[float, int]:
    delays: dict[str, list[float]] = {"page_hinkley": [], "adwin": []}
    false_alarms: dict[str, int] = {"page_hinkley": 0, "adwin": 0}
    missed: dict[str, int] = {"page_hinkley": 0, "adwin": 0}
    change = 2500
    for r, seed in enumerate(drift_seeds):
        data = make_drifting_stream(5000, change_at=change, random_state=seed)
        for det in rotate(list(delays), r):
            events = StreamingClustering(detector=det, random_state=seed).fit(data.X).drift_events_
            after = [e.index - change for e in events if e.index >= change]
            false_alarms[det] += sum(e.index < change for e in events)
            if after:
                delays[det].append(after[0])
            else:
                missed[det] += 1
    for seed in stationary_seeds:
        data = make_drifting_stream(20_000, change_at=None, random_state=seed)
        for det in delays:
            false_alarms[det] += len(
                StreamingClustering(detector=det, random_state=seed).fit(data.X).drift_events_
            )
    rows = {
        d: {
            "delay_median": med(delays[d]),
            "delay_max": max(delays[d], default=float("nan")),
            "missed": float(missed[d]),
            "false_alarms": float(false_alarms[d]),
        }
        for d in delays
    }
    print_table(
        f"Streaming: change of class mixture at sample {change} ({len(drift_seeds)} seeds); "
        f"false alarms over {len(stationary_seeds)} stationary streams of 20,000 plus pre-change segments",
        rows,
        ["delay_median", "delay_max", "missed", "false_alarms"],
    )
    return med(delays["page_hinkley"]), false_alarms["page_hinkley"]


def bench_scale(n_series: int, repeats: int, chunk_size: int) -> float:
    model = ReservoirClustering(n_clusters=4, random_state=0)
    rates: dict[str, list[float]] = {"map_2_workers": [], "serial": []}
    aris: list[float] = []
    with sf.executor("processes", max_workers=2) as ex:
        ex.submit(abs, -1).result()  # warm the pool outside the timed region
        for r in range(repeats):
            for name in rotate(list(rates), r):
                if name == "map_2_workers":
                    report = run_at_scale(
                        model,
                        n_series,
                        500,
                        chunk_size=chunk_size,
                        fit_series=2000,
                        executor=ex,
                        random_state=r,
                    )
                    rates[name].append(report.series_per_s)
                    aris.append(report.ari)
                else:
                    n_serial = max(chunk_size, n_series // 4)
                    t0 = time.perf_counter()
                    for i in range(n_serial // chunk_size):
                        _ar2_chunk(i, estimator=model, chunk_size=chunk_size, length=500, seed=r)
                    rates[name].append((n_serial // chunk_size) * chunk_size / (time.perf_counter() - t0))
    rate = med(rates["map_2_workers"])
    rows = {
        name: {
            "series_per_s": med(v),
            "ratio_vs_serial": med(v) / med(rates["serial"]),
            "s_for_1e5": 1e5 / med(v),
        }
        for name, v in rates.items()
    }
    print_table(
        f"Scale: T=500 series labelled via scaleforge.map (N={n_series} per run, chunks of {chunk_size}, "
        f"{repeats} runs; serial = same chunks in-process on N/4); ARI median {med(aris):.3f}",
        rows,
        ["series_per_s", "ratio_vs_serial", "s_for_1e5"],
    )
    print(
        f"  chunk memory bound: {chunk_size * 500 * 8 / 1e6:.0f} MB of input per task; driver peak RSS "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer seeds and a smaller scale run")
    parser.add_argument(
        "--scale-series",
        type=int,
        default=None,
        help="series per scale run (default 20,000; quick 4,000; 100000 for the full target)",
    )
    args = parser.parse_args()
    seeds = [0, 1] if args.quick else [0, 1, 2, 3, 4]

    ar2 = bench_series(
        "AR(2), N=400, T=500 (ARI / NMI vs true classes; seconds = fit time)",
        lambda s: make_ar2(400, 500, random_state=s),
        SERIES_METHODS,
        seeds,
    )
    esn, raw, spec = ar2["esn"]["ari_median"], ar2["raw"]["ari_median"], ar2["spectral"]["ari_median"]
    print(
        f"  ESN - raw = {esn - raw:+.3f} (target >= +0.5); ESN / spectral = {esn / spec:.3f}; "
        f"ESN time / spectral time = {ar2['esn']['seconds'] / ar2['spectral']['seconds']:.1f}x"
    )

    trace_methods = {
        k: v for k, v in SERIES_METHODS.items() if k in ("esn", "lsm", "hybrid", "raw", "spectral")
    }
    trace_methods["dtw"] = lambda X, k, s: dtw_kmeans(X, k, random_state=s)
    trace = load_trace()
    bench_series(
        "UCR Trace (tslearn bundle), N=200, T=275; seeds vary the models",
        lambda s: trace,
        trace_methods,
        seeds[:1] if args.quick else seeds[:3],
    )

    gap = bench_profiles(seeds)
    delay, false_alarms = bench_streaming(seeds, seeds[:1] if args.quick else seeds[:3])
    n_scale = args.scale_series or (4000 if args.quick else 20_000)
    rate = bench_scale(n_scale, 1 if args.quick else 2, chunk_size=1000)

    metrics = {
        "ar2_esn_ari": round(esn, 4),
        "ar2_raw_ari": round(raw, 4),
        "ar2_spectral_ari": round(spec, 4),
        "profiles_ari_gap_to_oracle": round(gap, 4),
        "drift_delay": delay,
        "drift_false_alarms": false_alarms,
        "series_per_s": round(rate, 1),
    }
    print(json.dumps({"bench": "clustering", "metrics": metrics}))


if __name__ == "__main__":
    main()
