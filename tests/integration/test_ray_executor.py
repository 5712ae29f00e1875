"""RayExecutor against a real local Ray: conformance, chunking, ray.put, worker death."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import scaleforge as sf
from scaleforge.testing.executors import ExecutorTests

pytestmark = [pytest.mark.integration, pytest.mark.ray]

ray = pytest.importorskip("ray")


@pytest.fixture(scope="session")
def ray_session() -> Iterator[Any]:
    # Ray workers import test functions by module name: put this folder on their path.
    here = str(Path(__file__).parent)
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def ray_executor(ray_session: Any) -> Iterator[Any]:
    from scaleforge.compute.ray import RayExecutor

    ex = RayExecutor()
    yield ex
    ex.shutdown()


class TestRayExecutor(ExecutorTests):
    @pytest.fixture
    def executor(self, ray_executor: Any) -> Any:
        return ray_executor


def _noop(x: int) -> int:
    return x


def test_tiny_items_are_chunked_not_one_task_each(ray_executor: Any) -> None:
    submitted: list[int] = []
    real = ray_executor.submit_task

    def spy(fn: Any, args: tuple[Any, ...] = (), kwargs: Any = None, **kw: Any) -> Any:
        submitted.append(len(args[1]))
        return real(fn, args, kwargs, **kw)

    ray_executor.submit_task = spy
    try:
        assert sf.map(_noop, range(5000), executor=ray_executor) == list(range(5000))
    finally:
        del ray_executor.submit_task
    assert sum(submitted) == 5000
    assert len(submitted) < 100  # at most a few probes, then large chunks


def _object_id(i: int, arr: Any) -> tuple[int, int]:
    return os.getpid(), arr.__array_interface__["data"][0]


def test_shared_array_goes_through_the_object_store_once(ray_executor: Any) -> None:
    import numpy as np

    puts: list[int] = []
    real_put = ray.put

    def counting_put(value: Any, **kw: Any) -> Any:
        puts.append(getattr(value, "nbytes", 0))
        return real_put(value, **kw)

    big = np.ones(20 * 10**6 // 8)
    ray.put = counting_put
    try:
        out = sf.map(_object_id, range(20), executor=ray_executor, chunksize=1, arr=big)
    finally:
        ray.put = real_put
    assert puts == [big.nbytes]  # one put for 20 tasks
    assert len(out) == 20


def _slow_pid(x: int, marker: str) -> tuple[int, int]:
    Path(marker, f"{os.getpid()}-{x}").touch()
    time.sleep(0.1)
    return x * 2, os.getpid()


def test_sigkill_a_ray_worker_mid_task_map_completes(ray_executor: Any, tmp_path: Path) -> None:
    import threading

    def killer() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            started = list(tmp_path.iterdir())
            if started:
                os.kill(int(started[0].name.split("-")[0]), signal.SIGKILL)
                return
            time.sleep(0.01)

    t = threading.Thread(target=killer)
    t.start()
    out = sf.map(_slow_pid, range(12), executor=ray_executor, chunksize=1, marker=str(tmp_path))
    t.join()
    assert [v for v, _ in out] == [2 * i for i in range(12)]


def test_config_context_selects_ray(ray_executor: Any) -> None:
    with sf.config_context(executor="ray"):
        pids = sf.map(lambda _: os.getpid(), range(4))
    assert os.getpid() not in pids
