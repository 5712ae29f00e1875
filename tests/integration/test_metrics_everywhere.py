"""Every landed layer records its metrics: real work through each, then read ``/metrics``.

One test process:

- runs a ``@cached`` function (DiskTier in tmp_path) through ``scaleforge.map`` on a
  ``ProcessExecutor`` whose workers record into ``Settings.monitor.multiprocess_dir``;
  each task generates a PDE sample *inside its worker* (a nested threads map), so the
  PDE and thread-executor series exist only in worker files and must add up across
  processes; a re-run is answered by the cache;
- answers a few predict requests with a ``scaleforge.serve`` app over ``httpx.ASGITransport``;
- submits jobs to a SQLite job store and runs them with a ``Worker``;
- generates a cached PDE data set twice here (the second time from the cache), evaluates
  the habitat PID controller and runs a small clustering consensus;
- samples the system once;

then renders ``monitor.metrics.generate_latest(multiprocess_dir=...)`` and checks the
expected series with non-zero values, that every name the Grafana dashboard queries
is produced, and that the dashboard's collector derives its figures from them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import prometheus_client as prom
import pytest
from prometheus_client.parser import text_string_to_metric_families

import scaleforge as sf
from scaleforge.cache.decorators import cached
from scaleforge.cache.disk import DiskTier
from scaleforge.monitor import metrics
from scaleforge.settings import config_context, load_settings, set_settings

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
N_ITEMS = 6


def _pde_task(seed: int) -> list[float]:
    """Runs in a worker process: one Darcy sample, generated through a nested threads map."""
    from scaleforge.workloads.pde.datasets import generate

    ds = generate("darcy", n=1, resolution=8, seed=seed, executor="threads", progress=False, cache=False)
    return [float(ds.outputs.mean()), float(os.getpid())]


def _fails(x: int) -> int:
    raise ValueError(f"item {x} fails on purpose")


@pytest.fixture
def multiprocess_settings(tmp_path: Path) -> Iterator[Path]:
    mp_dir = tmp_path / "metrics"
    set_settings(load_settings(monitor={"multiprocess_dir": str(mp_dir)}, jobs={"result_dir": str(tmp_path)}))
    try:
        yield mp_dir
    finally:
        set_settings(None)


def _samples(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name][tuple(sorted(s.labels.items()))] = s.value
    return out


def _total(samples: dict[str, dict[Any, float]], name: str, **labels: str) -> float:
    return sum(
        v for k, v in samples.get(name, {}).items() if all(dict(k).get(a) == b for a, b in labels.items())
    )


def _serve_requests() -> None:
    import httpx

    from scaleforge.serve.app import create_app

    app = create_app({"double": lambda x: 2 * np.asarray(x)}, tokens={})

    async def main() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://sf.test") as client:
                for i in range(4):
                    r = await client.post(
                        "/v1/models/double/predict", json={"inputs": [[i, 1.0], [2.0, 3.0]]}
                    )
                    assert r.status_code == 200, r.text
                r = await client.post("/v1/models/nope/predict", json={"input": [1.0]})
                assert r.status_code == 404

    asyncio.run(main())


def _run_jobs(tmp_path: Path) -> None:
    from scaleforge.jobs.models import JobSpec
    from scaleforge.jobs.store import SQLJobStore
    from scaleforge.jobs.worker import Worker

    store = SQLJobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    try:
        for _ in range(3):
            store.submit(JobSpec("scaleforge.sleep", {"seconds": 0}), owner="me")
        done = Worker(store, executor="threads", result_dir=tmp_path / "results").run(stop_when_idle=True)
        assert done == 3
        assert store.counts()["succeeded"] == 3
    finally:
        store.close()


def test_every_layer_records_and_metrics_adds_up(multiprocess_settings: Path, tmp_path: Path) -> None:
    from scaleforge.compute.local import ProcessExecutor
    from scaleforge.monitor.collector import MetricsCollector
    from scaleforge.monitor.sampler import SystemSampler
    from scaleforge.monitor.sources import MultiprocessSource, RegistrySource
    from scaleforge.workloads.clustering import ProfileClustering
    from scaleforge.workloads.clustering.datasets import make_profiles
    from scaleforge.workloads.clustering.ensemble import consensus_clustering
    from scaleforge.workloads.habitat.evaluate import evaluate
    from scaleforge.workloads.pde.datasets import generate

    mp_dir = multiprocess_settings
    before = _samples(metrics.generate_latest().decode())  # this process's counters so far (other tests)

    # compute + cache: workers record into the shared directory, the parent in-process
    tier = DiskTier(tmp_path / "cache", max_bytes="50MB")
    task = cached(cache=tier)(_pde_task)
    with ProcessExecutor(max_workers=2) as ex:
        first = sf.map(task, range(N_ITEMS), executor=ex, chunksize=1, progress=False, on_error="collect")
        again = sf.map(task, range(N_ITEMS), executor=ex, chunksize=1, progress=False, on_error="collect")
    failed = sf.map(_fails, [1, 2], executor="threads", progress=False, on_error="collect")
    assert len(failed.errors) == 2
    tier.stats()  # tiers push their counters to Prometheus at most once a second; stats() pushes now
    assert (first.cache_misses, again.cache_hits) == (N_ITEMS, N_ITEMS)
    worker_pids = {int(r[1]) for r in first.results}
    assert os.getpid() not in worker_pids

    with config_context(cache=DiskTier(tmp_path / "pde-cache")):  # in this process: cached blocks
        for _ in range(2):
            generate("darcy", n=2, resolution=8, seed=7, executor="threads", progress=False)
    _serve_requests()
    _run_jobs(tmp_path)
    report = evaluate("pid", seeds=1, scenarios="nominal", executor="threads", cache=False, progress=False)
    assert report.scenarios["nominal"].normalised_score == pytest.approx(1.0)
    data = make_profiles(120, spread=5.0, random_state=0)
    consensus_clustering(ProfileClustering(4), data.X, n_runs=2, executor="threads", random_state=0)
    sampler = SystemSampler(interval_s=1.0)
    sampler.sample_once()
    sampler.close()

    text = metrics.generate_latest(multiprocess_dir=mp_dir).decode()
    now = _samples(text)

    def grew(name: str, **labels: str) -> float:
        return _total(now, name, **labels) - _total(before, name, **labels)

    # worker-side series exist only in the workers' files: their sum is exactly one sample per task
    pid_files = {int(m) for m in re.findall(r"_(\d+)\.db", " ".join(os.listdir(mp_dir)))}
    assert worker_pids <= pid_files
    assert (
        _total(now, "scaleforge_pde_samples_generated_total", dataset="darcy", source="computed") >= N_ITEMS
    )
    in_workers = _samples(metrics.generate_latest(prom.CollectorRegistry(), multiprocess_dir=mp_dir).decode())
    assert _total(in_workers, "scaleforge_pde_samples_generated_total", source="computed") == N_ITEMS
    assert _total(in_workers, "scaleforge_tasks_completed_total", executor="threads") == N_ITEMS
    # parent-side compute and cache
    assert grew("scaleforge_tasks_completed_total", executor="processes") >= N_ITEMS
    assert grew("scaleforge_map_cache_hits_total", executor="processes") >= N_ITEMS
    assert grew("scaleforge_task_duration_seconds_count", executor="processes") > 0
    assert grew("scaleforge_tasks_failed_total", executor="threads") == 2
    assert grew("scaleforge_cache_misses_total", tier="disk") >= N_ITEMS
    assert grew("scaleforge_cache_hits_total", tier="disk") >= N_ITEMS
    assert "scaleforge_workers" in now  # 0 again once the executor shut down
    # serve
    assert grew("scaleforge_requests_total", model="double", status="200") == 4
    assert grew("scaleforge_request_latency_seconds_count", model="double") == 4
    assert grew("scaleforge_batch_size_count", model="double") >= 1
    assert grew("scaleforge_batch_size_sum", model="double") == 8
    assert _total(now, "scaleforge_max_batch_size", model="double") > 0
    # jobs
    assert grew("scaleforge_jobs_claims_total", workload="scaleforge.sleep") == 3
    assert grew("scaleforge_jobs_finished_total", workload="scaleforge.sleep", status="succeeded") == 3
    assert grew("scaleforge_jobs_claim_seconds_count") >= 3
    assert grew("scaleforge_jobs_wait_seconds_count", workload="scaleforge.sleep") == 3
    assert _total(now, "scaleforge_jobs_by_status", status="succeeded") >= 3
    assert "scaleforge_jobs_queue_depth" in now
    # workloads
    assert grew("scaleforge_pde_generation_cache_total", dataset="darcy", result="miss") == 1
    assert grew("scaleforge_pde_generation_cache_total", dataset="darcy", result="hit") == 1
    assert grew("scaleforge_pde_samples_generated_total", dataset="darcy", source="cache") == 2
    assert grew("scaleforge_habitat_episodes_evaluated_total", policy="pid", role="policy") == 1
    assert _total(now, "scaleforge_habitat_normalised_score", policy="pid", scenario="nominal") == 1.0
    assert grew("scaleforge_clustering_ensembles_total", estimator="ProfileClustering") == 1
    assert grew("scaleforge_clustering_ensemble_runs_total", estimator="ProfileClustering") == 2
    # system sampler
    assert _total(now, "scaleforge_system_memory_percent") > 0

    # every metric the shipped Grafana dashboard queries is produced (GPU only with a GPU)
    doc = json.loads((DEPLOY / "grafana" / "scaleforge-dashboard.json").read_text())
    queried = {
        m for p in doc["panels"] for t in p["targets"] for m in re.findall(r"scaleforge_[a-z_]+", t["expr"])
    }
    missing = {m for m in queried if m not in now and "gpu" not in m}
    assert not missing, f"Grafana queries series no layer produced: {sorted(missing)}"

    # the dashboard's collector reads the same names and derives its figures from them
    collector = MetricsCollector([RegistrySource(metrics.REGISTRY), MultiprocessSource(mp_dir)])
    figures = collector.poll()["figures"]
    for name in (
        "cache_hit_rate",
        "tasks_completed_total",
        "requests_total",
        "batch_size_mean",
        "latency_p99_s",
    ):
        assert figures.get(name), (name, figures)
    assert figures["jobs_succeeded"] >= 3 and figures["jobs_queued"] == 0
    assert figures["pde_samples_per_s"] >= 0 and "habitat_episodes_per_s" in figures
    collector.close()
