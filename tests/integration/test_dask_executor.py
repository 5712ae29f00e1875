"""DaskExecutor against a real LocalCluster: conformance, scatter, worker death, adapt."""

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

pytestmark = [pytest.mark.integration, pytest.mark.dask]

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", host="127.0.0.1"
    ) as c:
        yield c


@pytest.fixture(scope="module")
def dask_executor(cluster: Any) -> Iterator[Any]:
    from scaleforge.compute.dask import DaskExecutor

    ex = DaskExecutor(address=cluster.scheduler_address)
    yield ex
    ex.shutdown()


class TestDaskExecutor(ExecutorTests):
    @pytest.fixture
    def executor(self, dask_executor: Any) -> Any:
        return dask_executor


def _noop(x: int) -> int:
    return x


def test_tiny_items_are_chunked(dask_executor: Any) -> None:
    sizes: list[int] = []
    real = dask_executor.submit_task

    def spy(fn: Any, args: tuple[Any, ...] = (), kwargs: Any = None, **kw: Any) -> Any:
        sizes.append(len(args[1]))
        return real(fn, args, kwargs, **kw)

    dask_executor.submit_task = spy
    try:
        assert sf.map(_noop, range(3000), executor=dask_executor) == list(range(3000))
    finally:
        del dask_executor.submit_task
    assert sum(sizes) == 3000 and len(sizes) < 100


def test_shared_array_is_scattered_once(dask_executor: Any) -> None:
    import numpy as np

    calls: list[Any] = []
    real = dask_executor.client.scatter

    def counting(value: Any, **kw: Any) -> Any:
        calls.append(kw.get("broadcast"))
        return real(value, **kw)

    dask_executor.client.scatter = counting
    try:
        big = np.arange(2 * 10**6, dtype=np.float64)
        out = sf.map(lambda i, arr: float(arr[i]), range(10), executor=dask_executor, chunksize=1, arr=big)
    finally:
        del dask_executor.client.scatter
    assert out == [float(i) for i in range(10)]
    assert calls == [True]


def _slow(x: int, marker: str) -> tuple[int, int]:
    Path(marker, f"{os.getpid()}-{x}").touch()
    time.sleep(0.1)
    return x + 100, os.getpid()


def test_sigkill_a_dask_worker_mid_task_map_completes(dask_executor: Any, tmp_path: Path) -> None:
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
    out = sf.map(_slow, range(12), executor=dask_executor, chunksize=1, marker=str(tmp_path))
    t.join()
    assert [v for v, _ in out] == [i + 100 for i in range(12)]


def test_adapt_is_passed_to_the_cluster() -> None:
    from scaleforge.compute.dask import DaskExecutor

    ex = DaskExecutor(n_workers=1, adapt=(1, 2))
    try:
        assert ex.adaptive is not None
        assert ex.cluster._adaptive is ex.adaptive  # the cluster's adaptive policy is ours
        assert (ex.adaptive.minimum, ex.adaptive.maximum) == (1, 2)
        assert ex.num_workers == 2
        assert sf.map(_noop, range(10), executor=ex) == list(range(10))
    finally:
        ex.shutdown()
