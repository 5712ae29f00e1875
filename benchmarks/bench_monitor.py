"""Benchmark of the monitoring layer: recording cost, sampler overhead, anomaly detection quality.

Side by side, interleaved and repeated:

- recording: scaleforge's metrics API (a bound child, as the layers use it) vs
  raw ``prometheus_client`` (the same objects without our wrapper), vs looking
  the child up on every call (``.labels(...).inc()``), vs a plain dict
  increment (no metrics at all), and the multiprocess (mmap) mode in a subprocess;
- the system sampler at a 1 s interval: its own CPU time (``time.thread_time``)
  over wall time, with a small process tree;
- anomaly detection: robust z-score (ours) vs EWMA (ours) vs a naive rolling
  mean/std 3-sigma rule, on labelled synthetic series.

Usage: ``python benchmarks/bench_monitor.py [--quick]``. The last stdout line
is ``{"bench": "monitor", "metrics": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable

import numpy as np
import prometheus_client as prom

from scaleforge.monitor import metrics
from scaleforge.monitor.anomaly import (
    EWMADetector,
    RobustZScoreDetector,
    evaluate_detection,
    make_synthetic_series,
)
from scaleforge.monitor.sampler import SystemSampler


def _per_op_ns(fn: Callable[[], None], n: int) -> float:
    loop = range(n)
    t0 = time.perf_counter_ns()
    for _ in loop:
        fn()
    t1 = time.perf_counter_ns()
    t2 = time.perf_counter_ns()
    for _ in loop:
        pass
    t3 = time.perf_counter_ns()
    return max(0.0, ((t1 - t0) - (t3 - t2)) / n)  # minus the bare loop


def bench_recording(n: int, repeats: int) -> tuple[dict[str, float], dict[str, list[float]]]:
    sf_counter = metrics.counter("bench_sf_ops_total", "bench", ["tier"])
    sf_child = sf_counter.labels(tier="memory")
    sf_hist = metrics.histogram("bench_sf_latency_seconds", "bench", ["tier"]).labels(tier="memory")
    reg = prom.CollectorRegistry()
    raw_counter = prom.Counter("bench_raw_ops", "bench", ["tier"], registry=reg)
    raw_child = raw_counter.labels(tier="memory")
    raw_hist = prom.Histogram("bench_raw_latency_seconds", "bench", ["tier"], registry=reg).labels(
        tier="memory"
    )
    plain: dict[str, int] = {"memory": 0}

    def plain_inc() -> None:
        plain["memory"] += 1

    cases: dict[str, Callable[[], None]] = {
        "counter sf bound child": sf_child.inc,
        "counter prometheus_client child": raw_child.inc,
        "counter sf .labels().inc()": lambda: sf_counter.labels(tier="memory").inc(),
        "counter plain dict (no metrics)": plain_inc,
        "histogram sf bound child": lambda: sf_hist.observe(0.0123),
        "histogram prometheus_client child": lambda: raw_hist.observe(0.0123),
    }
    samples: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeats):  # interleaved: every case once per round
        for name, fn in cases.items():
            samples[name].append(_per_op_ns(fn, n))
    return {k: statistics.median(v) for k, v in samples.items()}, samples


_MP_CODE = textwrap.dedent(
    """
    import sys, time, statistics
    from scaleforge.monitor import metrics
    metrics.enable_multiprocess(sys.argv[1])
    child = metrics.counter("bench_mp_ops_total", "bench", ["tier"]).labels(tier="memory")
    n, reps = int(sys.argv[2]), int(sys.argv[3])
    out = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            child.inc()
        out.append((time.perf_counter_ns() - t0) / n)
    print(statistics.median(out))
    """
)


def bench_multiprocess(n: int, repeats: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run(
            [sys.executable, "-c", _MP_CODE, d, str(n), str(repeats)],
            capture_output=True,
            text=True,
            check=True,
        )
    return float(out.stdout.strip())


def bench_sampler(duration_s: float, children: int) -> dict[str, float]:
    procs = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]) for _ in range(children)
    ]
    try:
        with SystemSampler(interval_s=1.0) as s:
            t0 = time.monotonic()
            time.sleep(duration_s)
            wall = time.monotonic() - t0
        per_sample_ms = 1e3 * s.cpu_time_s / max(1, s.samples)
        return {
            "sampler_cpu_pct": 100.0 * s.cpu_time_s / wall,
            "samples": s.samples,
            "per_sample_ms": per_sample_ms,
        }
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _naive_detect(x: np.ndarray, window: int = 60, k: float = 3.0) -> np.ndarray:
    flags = np.zeros(len(x), dtype=bool)
    for i in range(window, len(x)):
        w = x[i - window : i]
        flags[i] = abs(x[i] - w.mean()) > k * w.std()
    return flags


def bench_anomaly(n_series: int, seed: int) -> dict[str, dict[str, float]]:
    detectors: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "robust z (sf)": lambda x: RobustZScoreDetector().detect(x),
        "EWMA (sf)": lambda x: EWMADetector().detect(x),
        "rolling mean/std 3 sigma": _naive_detect,
    }
    cases = [("spikes", 7.0), ("spikes", 6.0), ("level_shifts", 6.0), ("drift", 6.0), ("clean", 0.0)]
    out: dict[str, dict[str, float]] = {}
    for name, det in detectors.items():
        for kind, mag in cases:
            rng = np.random.default_rng(seed)
            flags, events, off = [], [], 0
            t0 = time.perf_counter()
            for _ in range(n_series):
                x, ev = make_synthetic_series(
                    kind, 6000 if kind == "drift" else 3000, magnitude=mag, random_state=rng
                )
                flags.append(det(x))
                events += [(a + off, b + off) for a, b in ev]
                off += len(x)
            elapsed = time.perf_counter() - t0
            sc = evaluate_detection(np.concatenate(flags), events)
            out[f"{name}|{kind}@{mag:g}"] = {
                "recall": sc.recall,
                "precision": sc.precision,
                "far": sc.false_alarm_rate,
                "us_per_point": 1e6 * elapsed / off,
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Fewer repeats and a 5 s sampler run.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n, repeats = (100_000, 7) if args.quick else (500_000, 15)
    duration = 5.0 if args.quick else 30.0
    n_series = 3 if args.quick else 10

    rec, rounds = bench_recording(n, repeats)
    mp = bench_multiprocess(n // 5, repeats)
    print(f"\nRecording cost, median of {repeats} interleaved rounds of {n:,} calls (ns per call)")
    base = rec["counter prometheus_client child"]
    print(f"{'case':40s} {'ns/op':>8s} {'min-max of rounds':>20s} {'vs raw prometheus_client':>26s}")
    for name, ns in [*rec.items(), ("counter sf multiprocess (mmap) child", mp)]:
        ref = base if name.startswith("counter") else rec["histogram prometheus_client child"]
        r = rounds.get(name)
        spread = f"{min(r):.0f}-{max(r):.0f}" if r else "(subprocess)"
        print(f"{name:40s} {ns:8.1f} {spread:>20s} {ns / ref:25.2f}x")

    smp = bench_sampler(duration, children=4)
    print(f"\nSystem sampler at 1 s, {smp['samples']:.0f} samples over {duration:.0f} s, 4 child processes")
    print(f"  CPU: {smp['sampler_cpu_pct']:.3f}% of one core ({smp['per_sample_ms']:.2f} ms per sample)")

    an = bench_anomaly(n_series, args.seed)
    print(f"\nAnomaly detection, {n_series} series per case (Gaussian noise)")
    print(
        f"{'detector':26s} {'case':18s} {'recall':>7s} {'precision':>9s} {'false alarms':>12s} {'us/pt':>7s}"
    )
    for key, v in an.items():
        det, case = key.split("|")
        print(
            f"{det:26s} {case:18s} {v['recall']:7.3f} {v['precision']:9.3f} {v['far']:12.5f} {v['us_per_point']:7.2f}"
        )

    ours = "robust z (sf)"
    recall = min(an[f"{ours}|spikes@7"]["recall"], an[f"{ours}|level_shifts@6"]["recall"])
    far = max(
        an[f"{ours}|clean@0"]["far"], an[f"{ours}|spikes@7"]["far"], an[f"{ours}|level_shifts@6"]["far"]
    )
    result = {
        "bench": "monitor",
        "metrics": {
            "counter_inc_ns": round(rec["counter sf bound child"], 1),
            "counter_labels_inc_ns": round(rec["counter sf .labels().inc()"], 1),
            "counter_inc_multiprocess_ns": round(mp, 1),
            "counter_inc_prometheus_client_ns": round(base, 1),
            "histogram_observe_ns": round(rec["histogram sf bound child"], 1),
            "sampler_cpu_pct": round(smp["sampler_cpu_pct"], 4),
            "anomaly_recall": round(recall, 4),
            "anomaly_false_alarm_rate": round(far, 5),
        },
    }
    targets = (
        result["metrics"]["counter_inc_ns"] <= 1000,
        smp["sampler_cpu_pct"] <= 1.0,
        recall >= 0.9 and far <= 0.01,
    )
    print(
        f"\ntargets: counter <= 1000 ns {targets[0]}; sampler <= 1% {targets[1]}; recall >= 0.9 at FAR <= 0.01 {targets[2]}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
