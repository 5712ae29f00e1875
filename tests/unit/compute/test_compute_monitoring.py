"""Monitoring hooks of the compute layer: task-duration histogram, worker metrics in
multiprocess mode, and map(profile=...) flame graphs, one per worker."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import scaleforge as sf
from scaleforge.compute.local import ProcessExecutor
from scaleforge.errors import InvalidParameterError
from scaleforge.monitor import metrics
from scaleforge.settings import Settings, set_settings


def _sample(name: str, labels: dict[str, str]) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def _nap(x: int) -> int:
    time.sleep(0.01)
    return x


def test_task_duration_histogram_records_time_per_item() -> None:
    labels = {"executor": "threads"}
    count0 = _sample("scaleforge_task_duration_seconds_count", labels)
    sum0 = _sample("scaleforge_task_duration_seconds_sum", labels)
    assert sf.map(_nap, range(12), executor="threads", chunksize=3) == list(range(12))
    count = _sample("scaleforge_task_duration_seconds_count", labels) - count0
    total = _sample("scaleforge_task_duration_seconds_sum", labels) - sum0
    assert count == 4  # one sample per chunk
    mean = total / count  # each sample is a chunk's compute time per item: >= the 10 ms sleep
    assert 0.0095 <= mean < 1.0


def _bump(x: int) -> int:
    metrics.counter("scaleforge_test_worker_bumps_total", "Bumps made inside workers").inc()
    return os.getpid()


@pytest.fixture
def multiprocess_settings(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "metrics"
    set_settings(Settings(monitor={"multiprocess_dir": directory}))
    try:
        yield directory
    finally:
        set_settings(None)


def test_worker_metrics_add_up_in_multiprocess_mode(multiprocess_settings: Path) -> None:
    with ProcessExecutor(max_workers=2) as ex:
        pids = sf.map(_bump, range(40), executor=ex, chunksize=1)
        victim = ex.worker_pids()[0]
        ex.kill_worker(victim)
        assert sf.map(_bump, range(10), executor=ex, chunksize=1)  # the replacement records too
    files = list(multiprocess_settings.glob("*.db"))
    assert {int(f.stem.rsplit("_", 1)[1]) for f in files} >= set(pids)  # one file set per worker pid
    families = {f.name: f for f in metrics.collect_families(multiprocess_dir=multiprocess_settings)}
    bumps = families["scaleforge_test_worker_bumps"]
    assert sum(s.value for s in bumps.samples if s.name.endswith("_total")) == 50
    assert metrics.multiprocess_dir() is None  # the parent itself stayed in-process


def _pid_after_nap(x: int) -> int:
    time.sleep(0.005)
    return os.getpid()


def test_profile_writes_one_flame_graph_per_worker(tmp_path: Path) -> None:
    out = tmp_path / "profiles"
    with ProcessExecutor(max_workers=2) as ex:
        report = sf.map(_pid_after_nap, range(30), executor=ex, chunksize=1, profile=out, on_error="collect")
    assert report.ok and len(report.results) == 30
    workers = set(report.results)
    assert len(report.profiles) == len(workers)
    for path in report.profiles:
        p = Path(path)
        assert p.parent == out and p.suffix == ".html" and p.stat().st_size > 0
        assert "_pid_after_nap" in p.name
    assert {int(Path(p).stem.split("-")[2]) for p in report.profiles} == workers


def _fail_on_zero(x: int) -> int:
    if x == 0:
        raise ValueError("zero")
    return x


def test_profile_true_uses_a_temporary_directory_and_keeps_failures_exact() -> None:
    report = sf.map(
        _fail_on_zero, range(6), executor="threads", profile=True, on_error="collect", chunksize=6
    )
    assert report.results == [None, 1, 2, 3, 4, 5]
    assert [(e.index, e.exception_type, e.attempts) for e in report.errors] == [(0, "ValueError", 1)]
    assert len(report.profiles) == 1 and Path(report.profiles[0]).is_file()
    shutil.rmtree(Path(report.profiles[0]).parent)


def test_profile_with_imap_and_threads(tmp_path: Path) -> None:
    with sf.executor("threads", max_workers=1) as ex:
        assert list(sf.imap(abs, [-1, -2, -3], executor=ex, profile=tmp_path)) == [1, 2, 3]
    assert len(list(tmp_path.glob("abs-*.html"))) == 1  # one worker thread, one profile


@pytest.mark.parametrize("bad", [3, 1.5, ["dir"]])
def test_bad_profile_argument(bad: object) -> None:
    with pytest.raises(InvalidParameterError, match="'profile' parameter"):
        sf.map(abs, [1], executor="threads", profile=bad)  # type: ignore[arg-type]


def test_profile_path_that_is_a_file_is_rejected(tmp_path: Path) -> None:
    f = tmp_path / "a.html"
    f.write_text("x")
    with pytest.raises(InvalidParameterError, match="is a file"):
        sf.map(abs, [1], executor="threads", profile=f)
