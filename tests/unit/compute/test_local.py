"""ProcessExecutor and ThreadExecutor: conformance, worker deaths, timeouts, reuse."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import scaleforge as sf
from scaleforge.compute import shared
from scaleforge.compute.local import ProcessExecutor, ThreadExecutor
from scaleforge.compute.registry import get_executor
from scaleforge.errors import ComputeError, InvalidParameterError, WorkerLostError
from scaleforge.testing.executors import ExecutorTests


@pytest.fixture(scope="module")
def module_pool() -> Iterator[ProcessExecutor]:
    with ProcessExecutor(max_workers=2) as ex:
        yield ex


@pytest.fixture(scope="module")
def module_threads() -> Iterator[ThreadExecutor]:
    with ThreadExecutor(max_workers=2) as ex:
        yield ex


class TestProcessExecutor(ExecutorTests):
    @pytest.fixture
    def executor(self, module_pool: ProcessExecutor) -> ProcessExecutor:
        return module_pool


class TestThreadExecutor(ExecutorTests):
    @pytest.fixture
    def executor(self, module_threads: ThreadExecutor) -> ThreadExecutor:
        return module_threads


@pytest.fixture
def pool() -> Iterator[ProcessExecutor]:
    ex = ProcessExecutor(max_workers=2)
    yield ex
    ex.shutdown(wait=True, cancel_futures=True)


def _slow_square(x: int, marker_dir: str) -> tuple[int, int]:
    Path(marker_dir, f"{os.getpid()}-{x}").touch()
    time.sleep(0.05)
    return x * x, os.getpid()


def _wait_for(predicate, timeout_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_sigkill_mid_task_map_completes_with_correct_results(pool: ProcessExecutor, tmp_path: Path) -> None:
    victim = pool.worker_pids()[0]

    def kill_when_started() -> None:
        _wait_for(lambda: any(p.name.startswith(f"{victim}-") for p in tmp_path.iterdir()))
        os.kill(victim, signal.SIGKILL)

    import threading

    killer = threading.Thread(target=kill_when_started)
    killer.start()
    out = sf.map(_slow_square, range(40), executor=pool, chunksize=1, marker_dir=str(tmp_path))
    killer.join()
    assert [v for v, _ in out] == [i * i for i in range(40)]
    assert victim not in {pid for _, pid in out[-5:]}
    assert pool.stats()["restarts"] >= 1
    assert victim not in pool.worker_pids()
    assert len(pool.worker_pids()) == 2


def test_pool_stays_usable_after_a_worker_death(pool: ProcessExecutor) -> None:
    before = pool.worker_pids()
    pool.kill_worker(before[0])
    _wait_for(lambda: before[0] not in pool.worker_pids() and len(pool.worker_pids()) == 2)
    assert sf.map(abs, [-1, -2, -3], executor=pool) == [1, 2, 3]


def _die(x: int) -> int:
    os._exit(3)


def test_task_that_always_kills_its_worker_fails_with_worker_lost() -> None:
    with ProcessExecutor(max_workers=1, max_task_restarts=2) as ex:
        fut = ex.submit(_die, 1)
        with pytest.raises(WorkerLostError, match="3 time"):
            fut.result(timeout=60)
        assert ex.submit(abs, -5).result(timeout=60) == 5


def test_timeout_kills_and_replaces_the_worker() -> None:
    with ProcessExecutor(max_workers=1) as ex:
        (pid,) = ex.worker_pids()
        fut = ex.submit_task(time.sleep, (60,), timeout_s=0.3)
        with pytest.raises(TimeoutError):
            fut.result(timeout=30)
        _wait_for(lambda: ex.worker_pids() and ex.worker_pids()[0] != pid)
        with pytest.raises(ProcessLookupError):
            _wait_for(lambda: not _alive(pid))
            os.kill(pid, 0)
        assert ex.submit(abs, -2).result(timeout=30) == 2


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _flaky_sleep(x: float) -> float:
    time.sleep(x)
    return x


def test_map_timeout_is_counted_and_collected() -> None:
    with ProcessExecutor(max_workers=2) as ex:
        report = sf.map(_flaky_sleep, [0.0, 30.0, 0.0], executor=ex, timeout_s=1.0, on_error="collect")
    assert report.results[0] == 0.0 and report.results[2] == 0.0
    assert [e.index for e in report.errors] == [1]
    assert report.errors[0].exception_type == "TimeoutError"


def _pid_and_loads(i: int, arr: object) -> tuple[int, int, str]:
    return os.getpid(), shared.load_count(), type(arr).__name__


def test_shared_array_is_mapped_once_per_worker(pool: ProcessExecutor) -> None:
    import numpy as np

    big = np.ones(20 * 10**6 // 8)  # ~20 MB
    out = sf.map(_pid_and_loads, range(64), executor=pool, chunksize=1, arr=big)
    loads_by_pid: dict[int, set[int]] = {}
    for pid, loads, kind in out:
        loads_by_pid.setdefault(pid, set()).add(loads)
        assert kind == "memmap"
    # every worker mapped the array once, however many tasks it ran
    assert all(counts == {1} for counts in loads_by_pid.values()), loads_by_pid
    assert not [p for p in Path(shared._shm_dir()).glob(f"scaleforge-shared-{os.getpid()}-*")]


def test_default_executor_is_reused_between_maps() -> None:
    first = get_executor()
    pids = first.submit(os.getpid).result(timeout=30)
    sf.map(abs, [-1, 2])
    assert get_executor() is first
    assert pids in first.worker_pids()  # type: ignore[attr-defined]


def test_submit_after_shutdown_raises() -> None:
    ex = ProcessExecutor(max_workers=1)
    ex.shutdown()
    with pytest.raises(ComputeError, match="shut down"):
        ex.submit(abs, 1)
    t = ThreadExecutor(max_workers=1)
    t.shutdown()
    with pytest.raises(ComputeError, match="shut down"):
        t.submit(abs, 1)


def test_unpicklable_argument_to_submit_is_rejected(pool: ProcessExecutor) -> None:
    import threading

    with pytest.raises(InvalidParameterError, match="picklable"):
        pool.submit(id, threading.Lock())


class _Unpicklable(Exception):
    def __init__(self, handle: object) -> None:
        super().__init__("cannot travel")
        self.handle = handle

    def __reduce__(self):  # type: ignore[no-untyped-def]
        raise TypeError("no pickling")


def _raise_unpicklable(x: int) -> int:
    raise _Unpicklable(object())


def test_unpicklable_exception_arrives_as_text(pool: ProcessExecutor) -> None:
    with pytest.raises(sf.ScaleforgeError) as info:
        sf.map(_raise_unpicklable, [1], executor=pool)
    cause = info.value.__cause__
    assert isinstance(cause, ComputeError)
    assert "_Unpicklable" in str(cause) and "cannot travel" in str(cause)
    assert "Traceback" in str(cause)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_workers": 0}, "max_workers"),
        ({"min_workers": -1}, "min_workers"),
        ({"start_method": "teleport"}, "start_method"),
        ({"max_task_restarts": -1}, "max_task_restarts"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        ProcessExecutor(**kwargs)  # type: ignore[arg-type]


def test_forkserver_start_method_works() -> None:
    with ProcessExecutor(max_workers=1, start_method="forkserver") as ex:
        assert ex.submit(abs, -9).result(timeout=60) == 9


def _nested(x: int) -> list[int]:
    return sf.map(abs, [-x, -x - 1])


def test_nested_map_inside_a_worker_runs_on_threads(pool: ProcessExecutor) -> None:
    assert sf.map(_nested, [1, 5], executor=pool) == [[1, 2], [5, 6]]


def test_start_method_from_settings() -> None:
    from scaleforge.settings import Settings, set_settings

    set_settings(Settings(compute={"start_method": "forkserver"}))
    try:
        with ProcessExecutor(max_workers=1) as ex:
            assert ex.start_method == "forkserver"
    finally:
        set_settings(None)


def test_interpreter_exit_stops_workers_even_with_a_task_running(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = tmp_path / "exit.py"
    script.write_text(
        "import time, scaleforge as sf\n"
        "from scaleforge.compute.registry import get_executor\n"
        "print(sf.map(abs, [-1, -2]))\n"
        "ex = get_executor()\n"
        "print(' '.join(map(str, ex.worker_pids())), flush=True)\n"
        "ex.submit(time.sleep, 300)\n"
        "time.sleep(0.2)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(sf.__file__).parents[1])}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.split("\n")
    assert lines[0] == "[1, 2]"
    pids = [int(p) for p in lines[1].split()]
    _wait_for(lambda: not any(_alive(p) for p in pids), timeout_s=10)


def _kmeans_labels_sum(seed: int) -> int:
    import numpy as np
    from sklearn.cluster import KMeans

    x = np.random.default_rng(seed).normal(size=(1500, 6))
    return int(KMeans(3, n_init=2, random_state=seed).fit(x).labels_.sum())


def _native_thread_counts(_: int) -> list[int]:
    from threadpoolctl import threadpool_info

    return sorted({int(pool["num_threads"]) for pool in threadpool_info()})


@pytest.mark.timeout(180)
def test_forked_workers_run_openmp_code_after_the_parent_used_it() -> None:
    # GNU OpenMP's thread pool does not survive fork: without the per-worker thread cap,
    # a forked worker running k-means after the parent did hangs until the timeout.
    import numpy as np
    from sklearn.cluster import KMeans

    KMeans(3, n_init=2, random_state=0).fit(np.random.default_rng(0).normal(size=(3000, 6)))
    from scaleforge.compute.local import ProcessExecutor

    with ProcessExecutor(max_workers=2, start_method="fork", threads_per_worker=1) as ex:
        report = sf.map(
            _kmeans_labels_sum, range(4), executor=ex, timeout_s=60, on_error="collect", progress=False
        )
        assert report.n_failed == 0, [e.exception_type for e in report.errors]
        assert report.results == [_kmeans_labels_sum(s) for s in range(4)]
        assert sf.map(_native_thread_counts, [0], executor=ex, progress=False) == [[1]]


def test_fork_warning_names_foreign_threads_and_ignores_our_own(caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import threading

    from scaleforge.compute.local import ProcessExecutor, _foreign_threads

    stop = threading.Event()
    foreign = threading.Thread(target=stop.wait, name="user-io-thread", daemon=True)
    # the first pool's manager thread ("sf-process-pool") is alive while the second pool forks
    with (
        caplog.at_level(logging.WARNING, logger="scaleforge.compute.local"),
        ProcessExecutor(max_workers=1, start_method="fork") as first,
    ):
        assert first.submit(abs, -3).result(timeout=30) == 3
        assert "sf-process-pool" in {t.name for t in threading.enumerate()}
        foreign.start()
        try:
            names = _foreign_threads()
            assert "user-io-thread" in names
            assert not [n for n in names if n.startswith("sf-")]  # our own threads are never blamed
            with ProcessExecutor(max_workers=1, start_method="fork") as second:
                assert second.submit(abs, -4).result(timeout=30) == 4
        finally:
            stop.set()
            foreign.join(timeout=5)
    messages = [r.getMessage() for r in caplog.records if "forking worker processes" in r.getMessage()]
    assert messages  # the pool forked while a foreign thread ran: it said so
    assert not any("sf-process-pool" in m for m in messages)
