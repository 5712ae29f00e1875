"""The worker in-process on SQLite: known answers, failures, exactly one result, metrics."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from _jobs_helpers import read_runs, signing_key, wait_for  # noqa: F401 - fixture

from scaleforge.errors import InvalidParameterError, JobError
from scaleforge.jobs.models import JobSpec
from scaleforge.jobs.store import SQLJobStore
from scaleforge.jobs.worker import Worker, read_result, recommend_workers

# -div(grad u) = 1 on the unit square, u = 0 on the boundary: max u = u(1/2, 1/2) =
# 0.0736713532814... (series solution; e.g. Trefethen, "Ten digit problems").
pytestmark = pytest.mark.usefixtures("signing_key")  # result frames are signed

POISSON_MAX = 0.07367135328


@pytest.fixture
def store(tmp_path: Path) -> SQLJobStore:
    s = SQLJobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    yield s  # type: ignore[misc]
    s.close()


def _worker(store: SQLJobStore, tmp_path: Path, **kw: object) -> Worker:
    return Worker(store, executor="threads", result_dir=tmp_path / "results", poll_interval_s=0.02, **kw)  # type: ignore[arg-type]


def test_poisson_job_matches_the_analytic_maximum(store: SQLJobStore, tmp_path: Path) -> None:
    coarse, _ = store.submit(JobSpec("pde.poisson", {"resolution": 8}), owner="a")
    fine, _ = store.submit(JobSpec("pde.poisson", {"resolution": 32}), owner="a")
    scaled, _ = store.submit(JobSpec("pde.poisson", {"resolution": 32, "kappa": 2.0, "f": 3.0}), owner="a")
    assert _worker(store, tmp_path, concurrency=2).run(stop_when_idle=True) == 3
    results = {j: read_result(store.get(j).result_ref or "") for j in (coarse.id, fine.id, scaled.id)}
    err_coarse = abs(results[coarse.id]["u_max"] - POISSON_MAX)
    err_fine = abs(results[fine.id]["u_max"] - POISSON_MAX)
    assert err_fine < 1e-4
    assert err_coarse / err_fine > 10  # second-order convergence: 4x finer -> ~16x smaller error
    # linearity: u scales with f / kappa
    assert results[scaled.id]["u_max"] == pytest.approx(results[fine.id]["u_max"] * 1.5, rel=1e-9)


def test_user_function_result_is_stored_once_as_a_file(store: SQLJobStore, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    job, _ = store.submit(JobSpec("jobstest.record", {"tag": "t1", "log": str(log)}), owner="a")
    _worker(store, tmp_path).run(stop_when_idle=True)
    done = store.get(job.id)
    assert done.status == "succeeded" and done.attempts == 1
    files = list((tmp_path / "results" / job.id).iterdir())
    assert len(files) == 1 and done.result_ref == files[0].resolve().as_uri()
    assert json.loads(files[0].read_text())["tag"] == "t1"
    assert len(read_runs(log)["t1"]) == 1


def test_failures_are_recorded_with_their_reason(store: SQLJobStore, tmp_path: Path) -> None:
    boom, _ = store.submit(JobSpec("jobstest.record", {"tag": "x", "fail": True}), owner="a")
    unjson, _ = store.submit(JobSpec("jobstest.unpicklable"), owner="a")
    bad, _ = store.submit(JobSpec("pde.poisson", {"resolution": -3}), owner="a")  # bypassed the service
    unknown, _ = store.submit(JobSpec("no.such.workload"), owner="a")
    _worker(store, tmp_path).run(stop_when_idle=True)
    assert "asked to fail" in (store.get(boom.id).error or "")
    assert "cannot be stored" in (store.get(unjson.id).error or "")
    assert "'resolution'" in (store.get(bad.id).error or "")
    assert "Unknown workload" in (store.get(unknown.id).error or "")
    assert {store.get(j.id).status for j in (boom, unjson, bad, unknown)} == {"failed"}
    assert store.get(boom.id).attempts == 1  # a raising function is not retried


def test_process_executor_runs_registered_functions(store: SQLJobStore, tmp_path: Path) -> None:
    jobs = [store.submit(JobSpec("jobstest.record", {"tag": f"p{i}"}), owner="a")[0] for i in range(3)]
    w = Worker(store, executor="processes", concurrency=2, result_dir=tmp_path / "r", poll_interval_s=0.02)
    assert w.run(stop_when_idle=True) == 3
    import os

    pids = {read_result(store.get(j.id).result_ref or "")["pid"] for j in jobs}
    assert os.getpid() not in pids  # ran in worker processes


def test_stop_drains_in_flight_jobs(store: SQLJobStore, tmp_path: Path) -> None:
    job, _ = store.submit(JobSpec("jobstest.record", {"tag": "s", "seconds": 0.3}), owner="a")
    w = _worker(store, tmp_path)
    t = threading.Thread(target=w.run)
    t.start()
    wait_for(lambda: store.get(job.id).status != "queued", what="the job to start")
    w.stop()
    t.join(timeout=30)
    assert not t.is_alive() and store.get(job.id).status == "succeeded"


def test_recommend_workers() -> None:
    assert recommend_workers(0, 4) == 0
    assert recommend_workers(9, 4) == 3
    assert recommend_workers(100, 4, max_workers=10) == 10
    assert recommend_workers(0, 4, min_workers=2) == 2
    with pytest.raises(InvalidParameterError):
        recommend_workers(3, 0)


def test_worker_validates_arguments(store: SQLJobStore) -> None:
    with pytest.raises(InvalidParameterError, match="concurrency"):
        Worker(store, concurrency=0)
    with pytest.raises(InvalidParameterError, match="executor"):
        Worker(store, executor=3)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="Unknown workload"):
        Worker(store, workloads=["typo"])


def test_read_result_errors(tmp_path: Path) -> None:
    with pytest.raises(JobError, match="file://"):
        read_result("s3://bucket/x")
    with pytest.raises(JobError, match="shared"):
        read_result((tmp_path / "missing.json").as_uri())
