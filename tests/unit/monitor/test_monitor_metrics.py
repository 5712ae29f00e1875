"""The metrics API: validation, idempotence, and multiprocess aggregation across real processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import prometheus_client as prom
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scaleforge.errors import InvalidParameterError
from scaleforge.monitor import metrics


def test_counter_is_idempotent_and_counts() -> None:
    c1 = metrics.counter("sf_test_idem_total", "doc", ["tier"])
    c2 = metrics.counter("sf_test_idem_total", "doc", ["tier"])
    assert c1 is c2
    c1.labels(tier="memory").inc(3)
    assert metrics.REGISTRY.get_sample_value("sf_test_idem_total", {"tier": "memory"}) == 3.0


def test_same_name_other_kind_or_labels_is_rejected() -> None:
    metrics.counter("sf_test_clash_total", "doc", ["a"])
    with pytest.raises(InvalidParameterError, match="already exists as a Counter"):
        metrics.gauge("sf_test_clash_total", "doc", ["a"])
    with pytest.raises(InvalidParameterError, match="labels"):
        metrics.counter("sf_test_clash_total", "doc", ["b"])


@pytest.mark.parametrize("name", ["1bad", "has space", "dash-name", ""])
def test_invalid_metric_names(name: str) -> None:
    with pytest.raises(InvalidParameterError, match="Metric names must match"):
        metrics.counter(name, "doc")


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (["ok", "bad-label"], "must match"),
        (["__reserved"], "not start with '__'"),
        (["le"], "reserved by Prometheus"),
        (["a", "a"], "distinct"),
        ("tier", "not a string"),
    ],
)
def test_invalid_label_sets(labels: object, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        metrics.counter("sf_test_badlabels_total", "doc", labels)  # type: ignore[arg-type]


def test_histogram_buckets_must_increase() -> None:
    with pytest.raises(InvalidParameterError, match="strictly increasing"):
        metrics.histogram("sf_test_hist_bad", "doc", buckets=[1.0, 0.5])
    h = metrics.histogram("sf_test_hist_ok", "doc", buckets=[0.1, 1.0])
    h.observe(0.05)
    h.observe(0.5)
    assert metrics.REGISTRY.get_sample_value("sf_test_hist_ok_bucket", {"le": "0.1"}) == 1.0
    assert metrics.REGISTRY.get_sample_value("sf_test_hist_ok_count") == 2.0


def test_gauge_rejects_unknown_multiprocess_mode() -> None:
    with pytest.raises(InvalidParameterError, match="multiprocess_mode"):
        metrics.gauge("sf_test_gauge_mode", "doc", multiprocess_mode="average")


def test_enable_multiprocess_without_directory_explains() -> None:
    with pytest.raises(InvalidParameterError, match="multiprocess_dir"):
        metrics.enable_multiprocess()


_WORKER = textwrap.dedent(
    """
    import sys
    from scaleforge.monitor import metrics
    metrics.enable_multiprocess(sys.argv[1])
    n = int(sys.argv[2])
    c = metrics.counter("scaleforge_tasks_completed_total", "tasks", ["executor"])
    h = metrics.histogram("scaleforge_task_duration_seconds", "d", ["executor"], buckets=[0.1, 1.0])
    g = metrics.gauge("scaleforge_workers", "workers", ["executor"])
    for _ in range(n):
        c.labels(executor="processes").inc()
        h.labels(executor="processes").observe(0.05)
    g.labels(executor="processes").set(1)
    metrics.gauge("sf_test_merge_peak", "peak", multiprocess_mode="max").set(n)
    print(metrics.multiprocess_dir())
    """
)


def _run_workers(directory: Path, counts: list[int]) -> list[int]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(directory), str(n)], stdout=subprocess.PIPE, text=True
        )
        for n in counts
    ]
    pids = []
    for p in procs:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0
        assert out.strip() == str(directory)
        pids.append(p.pid)
    return pids


def test_multiprocess_values_add_up_across_processes(tmp_path: Path) -> None:
    pids = _run_workers(tmp_path, [3, 4])
    text = metrics.generate_latest(prom.CollectorRegistry(), multiprocess_dir=tmp_path).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }
    assert samples[("scaleforge_tasks_completed_total", (("executor", "processes"),))] == 7.0
    assert samples[("scaleforge_task_duration_seconds_count", (("executor", "processes"),))] == 7.0
    assert (
        samples[("scaleforge_task_duration_seconds_bucket", (("executor", "processes"), ("le", "0.1")))]
        == 7.0
    )
    # live gauges sum over processes until a process is marked dead
    assert samples[("scaleforge_workers", (("executor", "processes"),))] == 2.0
    metrics.mark_process_dead(pids[0], tmp_path)
    fams = metrics.collect_families(prom.CollectorRegistry(), multiprocess_dir=tmp_path)
    workers = next(f for f in fams if f.name == "scaleforge_workers")
    assert [s.value for s in workers.samples] == [1.0]


def test_generate_latest_merges_local_registry(tmp_path: Path) -> None:
    _run_workers(tmp_path, [2])
    reg = prom.CollectorRegistry()
    prom.Counter("sf_local_only", "local", registry=reg).inc(5)
    text = metrics.generate_latest(reg, multiprocess_dir=tmp_path).decode()
    assert "sf_local_only_total 5.0" in text
    assert 'scaleforge_tasks_completed_total{executor="processes"} 2.0' in text


def test_local_values_add_to_worker_values_of_the_same_series(tmp_path: Path) -> None:
    # A parent that is not in multiprocess mode (it ran map; its workers wrote the directory)
    # counts the same series: /metrics must add both, not keep one side.
    _run_workers(tmp_path, [2, 3])
    reg = prom.CollectorRegistry()
    prom.Counter("scaleforge_tasks_completed", "t", ["executor"], registry=reg).labels(
        executor="processes"
    ).inc(10)
    h = prom.Histogram(
        "scaleforge_task_duration_seconds", "d", ["executor"], registry=reg, buckets=(0.1, 1.0)
    )
    h.labels(executor="processes").observe(0.05)
    # gauges combine by the multiprocess mode of the gauge made through monitor.metrics
    metrics.gauge("scaleforge_workers", "Workers of an executor", ["executor"])  # livesum
    prom.Gauge("scaleforge_workers", "w", ["executor"], registry=reg).labels(executor="processes").set(9)
    metrics.gauge("sf_test_merge_peak", "peak", multiprocess_mode="max")
    prom.Gauge("sf_test_merge_peak", "p", registry=reg).set(2.5)
    prom.Gauge("sf_test_merge_unknown", "u", registry=reg).set(3)
    text = metrics.generate_latest(reg, multiprocess_dir=tmp_path).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }
    assert samples[("scaleforge_tasks_completed_total", (("executor", "processes"),))] == 15.0
    assert samples[("scaleforge_task_duration_seconds_count", (("executor", "processes"),))] == 6.0
    key = ("scaleforge_task_duration_seconds_bucket", (("executor", "processes"), ("le", "0.1")))
    assert samples[key] == 6.0
    assert samples[("scaleforge_workers", (("executor", "processes"),))] == 2.0 + 9.0  # livesum
    assert samples[("sf_test_merge_peak", ())] == 3.0  # max of the workers' 2 and 3 and this 2.5
    assert samples[("sf_test_merge_unknown", ())] == 3.0


def test_collect_families_rejects_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="not a directory"):
        metrics.collect_families(multiprocess_dir=tmp_path / "nope")


def test_fast_counter_path_counts_exactly_under_threads() -> None:
    import threading

    c = metrics.counter("sf_test_fast_total", "doc", ["tier"])
    assert isinstance(c, prom.Counter)
    child = c.labels(tier="memory")

    def work() -> None:
        for _ in range(20_000):
            child.inc()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    child.inc(2.5)  # other amounts take prometheus_client's locked path
    assert metrics.REGISTRY.get_sample_value("sf_test_fast_total", {"tier": "memory"}) == 80_002.5
    child.reset()
    child.inc()
    assert metrics.REGISTRY.get_sample_value("sf_test_fast_total", {"tier": "memory"}) == 1.0
    with pytest.raises(ValueError, match="negative"):
        child.inc(-1)


def test_fast_counter_parent_with_labels_still_refuses_inc() -> None:
    c = metrics.counter("sf_test_fast_parent_total", "doc", ["tier"])
    with pytest.raises(ValueError, match="missing label values"):
        c.inc()
    plain = metrics.counter("sf_test_fast_plain_total", "doc")
    plain.inc()
    plain.inc()
    assert metrics.REGISTRY.get_sample_value("sf_test_fast_plain_total") == 2.0


_LATE_ENABLE = textwrap.dedent(
    """
    import sys
    from scaleforge.monitor import metrics
    # as a module does at import time, before the worker initializer runs
    plain = metrics.counter("sf_late_plain_total", "p")
    child = metrics.counter("sf_late_labelled_total", "l", ["tier"]).labels(tier="disk")
    hist = metrics.histogram("sf_late_seconds", "h", buckets=[1.0])
    plain.inc(5); child.inc(); hist.observe(0.5)          # recorded before: dropped
    metrics.enable_multiprocess(sys.argv[1])
    plain.inc(); plain.inc(); child.inc(); child.inc(); child.inc(); hist.observe(0.5)
    """
)


def test_enable_multiprocess_switches_existing_metrics_in_place(tmp_path: Path) -> None:
    for _ in range(2):
        subprocess.run([sys.executable, "-c", _LATE_ENABLE, str(tmp_path)], check=True, timeout=60)
    text = metrics.generate_latest(prom.CollectorRegistry(), multiprocess_dir=tmp_path).decode()
    assert "sf_late_plain_total 4.0" in text
    assert 'sf_late_labelled_total{tier="disk"} 6.0' in text
    assert "sf_late_seconds_count 2.0" in text


def test_config_context_metrics_false_makes_recording_a_no_op() -> None:
    import asyncio

    from scaleforge.settings import config_context

    c = metrics.counter("sf_test_ctx_off_total", "doc", ["tier"])
    g = metrics.gauge("sf_test_ctx_off_gauge", "doc")
    h = metrics.histogram("sf_test_ctx_off_seconds", "doc", buckets=(0.1, 1.0))
    child = c.labels(tier="memory")  # bound before the context: still honoured
    child.inc()
    g.set(5)
    h.observe(0.5)

    def sample(name: str, labels: dict[str, str] | None = None) -> float | None:
        return metrics.REGISTRY.get_sample_value(name, labels or {})

    with config_context(metrics=False):
        assert not metrics.recording_enabled()
        child.inc()
        child.inc(10)
        c.labels(tier="disk").inc()
        g.set(99)
        g.inc()
        g.dec(3)
        h.observe(0.05)
        with h.time():
            pass
    assert metrics.recording_enabled()
    assert sample("sf_test_ctx_off_total", {"tier": "memory"}) == 1.0
    assert sample("sf_test_ctx_off_total", {"tier": "disk"}) == 0.0
    assert sample("sf_test_ctx_off_gauge") == 5.0
    assert sample("sf_test_ctx_off_seconds_count") == 1.0
    assert sample("sf_test_ctx_off_seconds_bucket", {"le": "0.1"}) == 0.0

    # The switch is per task: a concurrent task outside the context keeps recording.
    async def main() -> None:
        async def off() -> None:
            with config_context(metrics=False):
                child.inc()
                await asyncio.sleep(0)
                child.inc()

        async def on() -> None:
            child.inc()
            await asyncio.sleep(0)
            child.inc()

        await asyncio.gather(off(), on())

    asyncio.run(main())
    assert sample("sf_test_ctx_off_total", {"tier": "memory"}) == 3.0
    # Other values of the key record normally.
    with config_context(metrics=None):
        child.inc()
    assert sample("sf_test_ctx_off_total", {"tier": "memory"}) == 4.0
