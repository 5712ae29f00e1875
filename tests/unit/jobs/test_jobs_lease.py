"""A worker that loses a running job stops it: real worker processes, real long jobs, SQLite.

The worker runs ``scaleforge jobs worker --executor processes`` in a subprocess;
the job records the pid of the pool process running it, so the tests can check
that this process really ends (not just that a result is dropped).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _jobs_helpers import (
    DB,
    kill9,
    read_runs,
    serve_in_thread,
    signing_key,  # noqa: F401 - fixture
    sqlite_db,
    start_worker,
    wait_for,
)

from scaleforge.jobs.models import JobSpec
from scaleforge.jobs.queue import JobQueue
from scaleforge.jobs.service import create_app
from scaleforge.jobs.store import SQLJobStore

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("signing_key")]


@pytest.fixture
def db(tmp_path: Path) -> DB:
    return sqlite_db(tmp_path)


@pytest.fixture
def store(db: DB) -> Iterator[SQLJobStore]:
    s = db.open()
    yield s
    s.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError, ValueError):  # a zombie has exited but is not reaped yet
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


def _only_run(log: Path, tag: str) -> tuple[int, dict[str, float]]:
    runs = read_runs(log).get(tag, {})
    assert len(runs) == 1, runs
    run_id, times = next(iter(runs.items()))
    return int(run_id.split("-")[0]), times


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            kill9(proc)


def test_cancelling_a_running_job_through_the_api_ends_its_process(
    db: DB, store: SQLJobStore, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    worker = start_worker(db, tmp_path, "w-cancel", lease_s=1.5, executor="processes")
    try:
        app = create_app(store, tokens={"t": "alice"})
        with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as http:
            auth = {"Authorization": "Bearer t"}
            body = {"workload": "jobstest.record", "params": {"tag": "long", "seconds": 120, "log": str(log)}}
            job = http.post("/v1/jobs", json=body, headers=auth).json()
            wait_for(lambda: "long" in read_runs(log), 60, "the long job to start")
            pid, _ = _only_run(log, "long")
            assert pid != worker.pid and _alive(pid)  # it runs in a pool process of the worker

            r = http.post(f"/v1/jobs/{job['id']}/cancel", headers=auth)
            assert r.status_code == 200 and r.json()["status"] == "cancelled"
            wait_for(lambda: not _alive(pid), 30, "the cancelled job's process to end")

            # The worker survives, its slot is free again, and it runs the next job.
            short = {"workload": "jobstest.record", "params": {"tag": "next", "log": str(log)}}
            nxt = http.post("/v1/jobs", json=short, headers=auth).json()
            wait_for(lambda: store.get(nxt["id"]).status == "succeeded", 60, "the next job")
        assert worker.poll() is None
        _, times = _only_run(log, "long")
        assert "end" not in times  # stopped mid-run, not run to the end
        done = store.get(job["id"])
        assert done.status == "cancelled" and done.result_ref is None
        assert not list((tmp_path / "results" / job["id"]).glob("*.json"))
        assert not list((tmp_path / "results" / job["id"]).glob("*.cancel"))  # marker cleaned up
    finally:
        _stop(worker)


def test_a_worker_that_lost_its_lease_stops_the_job_and_records_nothing(
    db: DB, store: SQLJobStore, tmp_path: Path
) -> None:
    log, marker = tmp_path / "runs.log", tmp_path / "first-run"
    params = {
        "tag": "j",
        "log": str(log),
        "first_run_marker": str(marker),
        "first_run_seconds": 120.0,
        "seconds": 0.1,
    }
    job, _ = store.submit(JobSpec("jobstest.record", params), owner="a")
    worker = start_worker(db, tmp_path, "w-lease", lease_s=1.5, executor="processes")
    try:
        wait_for(lambda: "j" in read_runs(log), 60, "the first run to start")
        first_pid, _ = _only_run(log, "j")
        # Freeze the worker's main process (its pool process keeps computing): like a long GC
        # pause or a network partition, its heartbeats stop and the lease expires.
        os.kill(worker.pid, signal.SIGSTOP)
        try:
            queue = JobQueue(store, lease_s=1.5)
            wait_for(lambda: queue.requeue_expired() == 1, 60, "the lease to expire")
            assert store.get(job.id).status == "queued"
            assert _alive(first_pid)  # the lost run is still going
        finally:
            os.kill(worker.pid, signal.SIGCONT)
        # The next heartbeat finds the lease gone: the worker ends the lost run, then claims
        # the re-queued job again and completes it.
        wait_for(lambda: not _alive(first_pid), 30, "the lost run's process to end")
        wait_for(lambda: store.get(job.id).status == "succeeded", 60, "the job to complete")
        done = store.get(job.id)
        assert done.attempts == 2
        runs = read_runs(log)["j"]
        assert len(runs) == 2
        assert sum("end" in t for t in runs.values()) == 1  # the lost run never finished
        files = sorted(p.name for p in (tmp_path / "results" / job.id).iterdir())
        assert len(files) == 1 and done.result_ref is not None and done.result_ref.endswith(files[0])
        kinds = [e.kind for e in store.events(job.id)]
        assert kinds.count("succeeded") == 1 and "requeued" in kinds
    finally:
        _stop(worker)
