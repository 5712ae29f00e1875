"""Conformance tests every job store backend passes; subclasses supply the ``db`` fixture."""

from __future__ import annotations

import functools
import operator
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from _jobs_helpers import DB

from scaleforge.errors import InvalidParameterError, JobNotFoundError
from scaleforge.jobs.models import JobSpec
from scaleforge.jobs.queue import JobQueue
from scaleforge.jobs.store import IdempotencyConflictError, SQLJobStore


class JobStoreTests:
    """Store and queue semantics against a real database."""

    @pytest.fixture
    def db(self) -> DB:
        raise NotImplementedError("subclasses provide the database")

    @pytest.fixture
    def store(self, db: DB) -> Iterator[SQLJobStore]:
        s = db.open(default_max_attempts=3)
        yield s
        s.close()

    # ---- submission --------------------------------------------------------------------
    def test_submit_then_get_round_trips(self, store: SQLJobStore) -> None:
        job, created = store.submit(JobSpec("w", {"a": [1, 2], "b": "x"}, priority=3), owner="alice")
        assert created
        got = store.get(job.id)
        assert got == job
        assert (got.status, got.attempts, got.max_attempts, got.params) == (
            "queued",
            0,
            3,
            {"a": [1, 2], "b": "x"},
        )
        assert [e.kind for e in store.events(job.id)] == ["submitted"]

    def test_idempotency_key_returns_the_first_job(self, store: SQLJobStore) -> None:
        first, created1 = store.submit(JobSpec("w", {"a": 1}, idempotency_key="k1"), owner="alice")
        again, created2 = store.submit(JobSpec("w", {"a": 1}, idempotency_key="k1"), owner="alice")
        assert created1 and not created2 and again.id == first.id
        other, created3 = store.submit(JobSpec("w", {"a": 1}, idempotency_key="k1"), owner="bob")
        assert created3 and other.id != first.id  # keys are per owner
        with pytest.raises(IdempotencyConflictError, match="k1"):
            store.submit(JobSpec("w", {"a": 2}, idempotency_key="k1"), owner="alice")
        assert store.counts()["queued"] == 2

    def test_concurrent_submissions_with_one_key_create_one_job(self, store: SQLJobStore) -> None:
        ids: list[str] = []
        lock = threading.Lock()

        def go() -> None:
            job, _ = store.submit(JobSpec("w", {}, idempotency_key="same"), owner="alice")
            with lock:
                ids.append(job.id)

        threads = [threading.Thread(target=go) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(ids) == 8 and len(set(ids)) == 1
        assert store.counts()["queued"] == 1

    def test_other_owner_sees_not_found(self, store: SQLJobStore) -> None:
        job, _ = store.submit(JobSpec("w"), owner="alice")
        with pytest.raises(JobNotFoundError):
            store.get(job.id, owner="mallory")
        with pytest.raises(JobNotFoundError):
            store.cancel(job.id, owner="mallory")
        assert store.get(job.id).status == "queued"

    def test_list_filters_and_paginates(self, store: SQLJobStore) -> None:
        ids = [store.submit(JobSpec("w", {"i": i}), owner="alice")[0].id for i in range(7)]
        store.submit(JobSpec("w"), owner="bob")
        store.cancel(ids[0])
        pages, after = [], None
        while True:
            page = store.list_jobs(owner="alice", limit=3, after=after)
            if not page:
                break
            pages.append([j.id for j in page])
            after = page[-1].id
        assert [len(p) for p in pages] == [3, 3, 1]
        assert functools.reduce(operator.iadd, pages, []) == ids
        assert [j.id for j in store.list_jobs(owner="alice", status="cancelled")] == [ids[0]]
        with pytest.raises(InvalidParameterError, match="status"):
            store.list_jobs(status="bogus")

    # ---- queue -------------------------------------------------------------------------
    def test_claims_follow_priority_then_age(self, store: SQLJobStore) -> None:
        jobs = [
            store.submit(JobSpec("w", {"i": i}, priority=p), owner="a")[0]
            for i, p in enumerate([0, 5, -1, 5])
        ]
        queue = JobQueue(store, lease_s=30)
        order = []
        while (claim := queue.claim("w1")) is not None:
            order.append(claim.job.id)
            assert claim.job.status == "running" and claim.job.attempts == 1
        assert order == [jobs[1].id, jobs[3].id, jobs[0].id, jobs[2].id]

    def test_claim_only_known_workloads(self, store: SQLJobStore) -> None:
        store.submit(JobSpec("a"), owner="o")
        b, _ = store.submit(JobSpec("b"), owner="o")
        claim = JobQueue(store, lease_s=30).claim("w", workloads=["b"])
        assert claim is not None and claim.job.id == b.id
        assert JobQueue(store, lease_s=30).claim("w", workloads=["b"]) is None

    def test_expired_lease_requeues_and_old_claim_cannot_finish(self, store: SQLJobStore) -> None:
        job, _ = store.submit(JobSpec("w"), owner="a")
        queue = JobQueue(store, lease_s=0.2)
        dead = queue.claim("dead-worker")
        assert dead is not None
        assert queue.requeue_expired() == 0  # lease still valid
        time.sleep(0.3)
        assert queue.requeue_expired() == 1
        assert store.get(job.id).status == "queued"
        alive = queue.claim("live-worker", lease_s=30)
        assert alive is not None and alive.job.id == job.id and alive.job.attempts == 2
        assert not queue.complete(dead, "file:///dead")  # the dead worker's late result is refused
        assert queue.complete(alive, "file:///alive")
        final = store.get(job.id)
        assert (final.status, final.result_ref, final.attempts) == ("succeeded", "file:///alive", 2)
        assert [e.kind for e in store.events(job.id)] == [
            "submitted",
            "claimed",
            "requeued",
            "claimed",
            "succeeded",
        ]

    def test_out_of_attempts_fails_with_reason(self, store: SQLJobStore) -> None:
        job, _ = store.submit(JobSpec("w", max_attempts=1), owner="a")
        queue = JobQueue(store, lease_s=0.1)
        assert queue.claim("w") is not None
        time.sleep(0.2)
        assert queue.requeue_expired() == 1
        final = store.get(job.id)
        assert final.status == "failed" and "lease expired" in (final.error or "")
        assert queue.claim("w") is None

    def test_heartbeats_keep_the_lease(self, store: SQLJobStore) -> None:
        store.submit(JobSpec("w"), owner="a")
        queue = JobQueue(store, lease_s=0.3)
        claim = queue.claim("w")
        assert claim is not None
        for _ in range(5):
            time.sleep(0.1)
            assert queue.heartbeat(claim)
        assert queue.requeue_expired() == 0
        assert queue.complete(claim, "file:///r")

    def test_cancel_running_job_revokes_the_claim(self, store: SQLJobStore) -> None:
        job, _ = store.submit(JobSpec("w"), owner="a")
        queue = JobQueue(store, lease_s=30)
        claim = queue.claim("w")
        assert claim is not None
        assert store.cancel(job.id, owner="a").status == "cancelled"
        assert not queue.heartbeat(claim)
        assert not queue.complete(claim, "file:///r")
        assert store.get(job.id).status == "cancelled"
        assert store.cancel(job.id).status == "cancelled"  # idempotent

    def test_fail_with_retry_requeues_until_attempts_run_out(self, store: SQLJobStore) -> None:
        job, _ = store.submit(JobSpec("w", max_attempts=2), owner="a")
        queue = JobQueue(store, lease_s=30)
        first = queue.claim("w")
        assert first is not None and queue.fail(first, "boom", retry=True)
        assert store.get(job.id).status == "queued"
        second = queue.claim("w")
        assert second is not None and queue.fail(second, "boom again", retry=True)
        final = store.get(job.id)
        assert (final.status, final.error, final.attempts) == ("failed", "boom again", 2)

    def test_concurrent_claims_hand_out_each_job_once(self, store: SQLJobStore) -> None:
        n_jobs, n_threads = 60, 6
        for i in range(n_jobs):
            store.submit(JobSpec("w", {"i": i}), owner="a")
        claimed: list[str] = []
        lock = threading.Lock()

        def drain(k: int) -> None:
            queue = JobQueue(store, lease_s=60)
            while (claim := queue.claim(f"w{k}")) is not None:
                with lock:
                    claimed.append(claim.job.id)

        threads = [threading.Thread(target=drain, args=(k,)) for k in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(claimed) == n_jobs
        assert max(Counter(claimed).values()) == 1
        assert store.counts()["running"] == n_jobs

    def test_reopening_runs_no_migration_twice(self, db: DB, store: SQLJobStore) -> None:
        job, _ = store.submit(JobSpec("w"), owner="a")
        again = db.open()
        try:
            assert again.get(job.id).id == job.id
        finally:
            again.close()
