"""The system sampler: real psutil readings, a clean stop, and crash recovery."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from scaleforge.errors import InvalidParameterError
from scaleforge.monitor import metrics, sampler
from scaleforge.monitor.sampler import GpuProbe, SystemSampler, sample_system


def _wait(predicate: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached in time")


def test_sample_covers_the_process_tree() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        s = SystemSampler(interval_s=0.05, gpu=False)
        first = s.sample_once()
        assert first["process_children"] >= 1
        assert first["process_memory_bytes"] > 10e6  # at least this interpreter
        assert 0.0 <= first["memory_percent"] <= 100.0
        assert first["memory_total_bytes"] > first["memory_used_bytes"] > 0
        burn_until = time.process_time() + 0.3
        while time.process_time() < burn_until:
            pass
        second = s.sample_once()
        assert second["process_cpu_percent"] > 5.0  # we just burned CPU in this process
    finally:
        child.kill()
        child.wait(10)
    assert (
        metrics.REGISTRY.get_sample_value("scaleforge_process_memory_bytes") == second["process_memory_bytes"]
    )


def test_background_thread_samples_and_stops_cleanly() -> None:
    got: list[dict[str, float]] = []
    s = SystemSampler(interval_s=0.02, on_sample=got.append, gpu=False).start()
    _wait(lambda: s.samples >= 3)
    s.stop()
    assert not s.running
    assert not any(t.name == "scaleforge-sampler" for t in threading.enumerate())
    n = s.samples
    time.sleep(0.1)
    assert s.samples == n  # really stopped
    assert len(got) == n and s.restarts == 0
    assert s.cpu_time_s > 0


def test_a_crash_is_counted_and_the_loop_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    real_read = sampler._TreeReader.read
    calls = {"n": 0}

    def flaky(self: sampler._TreeReader) -> dict[str, float]:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise OSError("proc vanished")
        return real_read(self)

    monkeypatch.setattr(sampler._TreeReader, "read", flaky)
    before = metrics.REGISTRY.get_sample_value("scaleforge_sampler_restarts_total") or 0.0
    with SystemSampler(interval_s=0.01, gpu=False, max_backoff_s=0.02) as s:
        _wait(lambda: s.samples >= 2)
        assert s.running
    assert s.restarts == 2
    assert metrics.REGISTRY.get_sample_value("scaleforge_sampler_restarts_total") == before + 2


def test_a_crashing_callback_never_reaches_the_host() -> None:
    def bad(sample: dict[str, float]) -> None:
        raise ValueError("callback bug")

    with SystemSampler(interval_s=0.01, on_sample=bad, gpu=False, max_backoff_s=0.01) as s:
        _wait(lambda: s.restarts >= 2)
        assert s.running


def test_gpu_probe_falls_back_without_nvml() -> None:
    probe = GpuProbe()
    if probe.available:  # pragma: no cover - only on a machine with an NVIDIA driver
        assert probe.count >= 1
        assert all(0 <= g["utilization_percent"] <= 100 for g in probe.read())
    else:
        assert probe.reason
        assert probe.read() == []
        assert not any(k.startswith("gpu") for k in SystemSampler(interval_s=1, gpu=True).sample_once())
    probe.close()


def test_sample_system_and_validation() -> None:
    assert sample_system()["process_memory_bytes"] > 0
    with pytest.raises(InvalidParameterError, match="interval_s"):
        SystemSampler(interval_s=0)
    with pytest.raises(InvalidParameterError, match="on_sample"):
        SystemSampler(interval_s=1, on_sample=42)  # type: ignore[arg-type]


def test_interval_defaults_to_settings() -> None:
    assert SystemSampler(gpu=False).interval_s == 1.0
