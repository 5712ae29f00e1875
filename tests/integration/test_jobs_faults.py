"""Real faults against the job service, on SQLite and on the real PostgreSQL.

- kill -9 a worker in the middle of a job: re-queued after its lease, completes, one result;
- kill -9 the service while 100 jobs are submitted by concurrent clients: after a restart every
  acknowledged job exists, none twice, and all complete;
- two workers racing for the same jobs: no job runs twice, let alone concurrently, even when
  jobs outlive their lease (heartbeats renew it).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "jobs"))

from _jobs_helpers import (
    DB,
    intervals_overlap,
    kill9,
    postgres_db,
    read_runs,
    sqlite_db,
    start_service,
    start_worker,
    wait_for,
)

from scaleforge.jobs.models import JobSpec
from scaleforge.jobs.store import SQLJobStore
from scaleforge.jobs.worker import Worker
from scaleforge.testing.fixtures import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DB]:
    if request.param == "sqlite":
        yield sqlite_db(tmp_path)
        return
    with postgres_db(request.getfixturevalue("database_url")) as pg:
        yield pg


@pytest.fixture
def store(db: DB) -> Iterator[SQLJobStore]:
    s = db.open()
    yield s
    s.close()


def _stop(proc: object) -> None:
    import subprocess

    assert isinstance(proc, subprocess.Popen)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            kill9(proc)


def test_killed_worker_job_is_requeued_and_completes_once(db: DB, store: SQLJobStore, tmp_path: Path) -> None:
    log, marker = tmp_path / "runs.log", tmp_path / "first-run"
    params = {
        "tag": "k",
        "log": str(log),
        "first_run_marker": str(marker),
        "first_run_seconds": 300.0,
        "seconds": 0.1,
    }
    job, _ = store.submit(JobSpec("jobstest.record", params), owner="a")
    doomed = start_worker(db, tmp_path, "doomed", lease_s=1.5)
    try:
        wait_for(lambda: "k" in read_runs(log), what="the first run to start")
        assert store.get(job.id).status == "running"
    finally:
        kill9(doomed)  # SIGKILL mid-job: no cleanup, no release, the lease just stops being renewed
    rescuer = start_worker(db, tmp_path, "rescuer", lease_s=1.5)
    try:
        wait_for(lambda: store.get(job.id).done, timeout_s=90, what="the job to finish")
    finally:
        _stop(rescuer)
    final = store.get(job.id)
    assert (final.status, final.attempts, final.worker_id) == ("succeeded", 2, "rescuer")
    results = list((tmp_path / "results" / job.id).glob("*.json"))
    assert len(results) == 1 and final.result_ref == results[0].resolve().as_uri()
    runs = list(read_runs(log)["k"].values())
    assert len(runs) == 2 and sum("end" in r for r in runs) == 1  # the killed run never ended
    kinds = [e.kind for e in store.events(job.id)]
    assert kinds == ["submitted", "claimed", "requeued", "claimed", "succeeded"]


def test_service_killed_during_submissions_loses_and_duplicates_nothing(
    db: DB, store: SQLJobStore, tmp_path: Path
) -> None:
    port = free_port()
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": "Bearer alice-token"}
    service = start_service(db, tmp_path, port, {"alice": "alice-token"})
    keys = [f"key-{i:03d}" for i in range(100)]
    acked: dict[str, str] = {}
    lock = threading.Lock()

    def submit_all(my_keys: list[str], pace_s: float) -> None:
        with httpx.Client(base_url=base, headers=auth, timeout=10) as client:
            for key in my_keys:
                body = {"workload": "jobstest.record", "params": {"tag": key}, "idempotency_key": key}
                try:
                    r = client.post("/v1/jobs", json=body)
                except httpx.TransportError:
                    continue  # the service died under us: this submission is unacknowledged
                if r.is_success:
                    with lock:
                        if key in acked:
                            assert acked[key] == r.json()["id"]
                        acked[key] = r.json()["id"]
                time.sleep(pace_s)

    threads = [threading.Thread(target=submit_all, args=(keys[i::8], 0.05)) for i in range(8)]
    try:
        for t in threads:
            t.start()
        wait_for(lambda: len(acked) >= 20, what="20 acknowledged submissions")
    finally:
        kill9(service)
    for t in threads:
        t.join(timeout=60)
    first_round = dict(acked)
    assert 20 <= len(first_round) < 100, "the kill must land in the middle of the submissions"

    service = start_service(db, tmp_path, port, {"alice": "alice-token"}, name="service-restarted")
    try:
        # Every client retries everything with the same keys, acknowledged or not.
        threads = [threading.Thread(target=submit_all, args=(keys[i::8], 0.0)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        kill9(service)
    assert set(acked) == set(keys)
    assert all(acked[k] == v for k, v in first_round.items())  # acknowledged jobs kept their id

    jobs = store.list_jobs(owner="alice", limit=1000)
    assert len(jobs) == 100
    assert sorted(j.idempotency_key or "" for j in jobs) == keys
    assert {j.id for j in jobs} == set(acked.values())

    Worker(store, executor="threads", concurrency=8, result_dir=tmp_path / "r", poll_interval_s=0.02).run(
        stop_when_idle=True
    )
    assert store.counts()["succeeded"] == 100


def test_racing_workers_never_run_a_job_twice(db: DB, store: SQLJobStore, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    # Jobs outlive their lease (2.5 s > 2 s): only heartbeats keep the other worker off them.
    jobs = [
        store.submit(
            JobSpec("jobstest.record", {"tag": f"j{i}", "log": str(log), "seconds": 2.5}), owner="a"
        )[0]
        for i in range(6)
    ]
    workers = [start_worker(db, tmp_path, f"racer{i}", lease_s=2.0, concurrency=2) for i in range(2)]
    try:
        wait_for(lambda: all(store.get(j.id).done for j in jobs), timeout_s=120, what="all jobs to finish")
    finally:
        for w in workers:
            _stop(w)
    runs = read_runs(log)
    for job in jobs:
        final = store.get(job.id)
        assert (final.status, final.attempts) == ("succeeded", 1), final
        tag = job.params["tag"]
        assert len(runs[tag]) == 1, f"{tag} ran {len(runs[tag])} times"
        assert not intervals_overlap(runs[tag])
    assert {store.get(j.id).worker_id for j in jobs} <= {"racer0", "racer1"}
