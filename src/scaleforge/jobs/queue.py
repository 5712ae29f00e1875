"""Queue semantics over the job store: claim, lease, heartbeat, finish, re-queue.

A worker *claims* the next queued job (highest priority, then oldest) and
holds it under a *lease* it renews by heartbeats. If the worker dies, the
lease expires; :meth:`JobQueue.requeue_expired` (run by every worker before it
claims) puts the job back in the queue, or fails it once it has been claimed
``max_attempts`` times. Every transition after the claim is conditional on the
claim's random token, so a worker whose lease was taken over can never record
a result: exactly one result is recorded per job.

The claim is one statement:

- PostgreSQL: ``UPDATE sf_jobs SET ... WHERE seq = (SELECT seq ... ORDER BY
  priority DESC, seq LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING *`` — concurrent
  workers skip each other's locked rows instead of waiting or colliding.
- SQLite: the same ``UPDATE ... WHERE seq = (SELECT ... LIMIT 1) RETURNING *``
  inside ``BEGIN IMMEDIATE``, which holds the database's single write lock, so
  no two claims interleave.

We wrote this claim rather than adopt procrastinate: procrastinate supports
PostgreSQL only (it relies on LISTEN/NOTIFY and PL/pgSQL procedures), and the
embedded default here is SQLite; one ~30-line claim serves both databases.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Collection

import sqlalchemy as sa

from scaleforge.errors import InvalidParameterError
from scaleforge.jobs.models import Job, jobs_table
from scaleforge.jobs.store import SQLJobStore
from scaleforge.monitor.metrics import counter
from scaleforge.settings import get_settings

__all__ = ["Claim", "JobQueue"]

logger = logging.getLogger(__name__)

_CLAIMS = counter("scaleforge_jobs_claims_total", "Jobs claimed by workers", ["workload"])
_FINISHED = counter("scaleforge_jobs_finished_total", "Jobs finished by workers", ["workload", "status"])
_REQUEUED = counter("scaleforge_jobs_requeued_total", "Jobs re-queued after their lease expired")


@dataclasses.dataclass(frozen=True, slots=True)
class Claim:
    """A job held by one worker under a lease.

    Attributes
    ----------
    job : Job
        The job as claimed (status ``running``, ``attempts`` incremented).
    token : str
        Proof of ownership; every later transition must present it.
    worker_id : str
    lease_s : float
    """

    job: Job
    token: str
    worker_id: str
    lease_s: float


def _check_lease(lease_s: object, owner: str) -> float:
    if isinstance(lease_s, bool) or not isinstance(lease_s, (int, float)) or not 0.1 <= lease_s <= 86_400:
        raise InvalidParameterError(
            f"The 'lease_s' parameter of {owner} must be a number of seconds between 0.1 and 86400. "
            f"Got {lease_s!r} instead (Settings.jobs.lease_s)."
        )
    return float(lease_s)


class JobQueue:
    """Claim, heartbeat and finish jobs held in a :class:`~scaleforge.jobs.store.SQLJobStore`.

    Parameters
    ----------
    store : SQLJobStore
    lease_s : float, optional
        Lease length; a job whose worker sends no heartbeat for this long is
        re-queued. Defaults to ``Settings.jobs.lease_s``.

    Examples
    --------
    >>> import tempfile, os
    >>> from scaleforge.jobs.models import JobSpec
    >>> store = SQLJobStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "q.db"))
    >>> job, _ = store.submit(JobSpec("scaleforge.sleep"), owner="me")
    >>> queue = JobQueue(store, lease_s=30)
    >>> claim = queue.claim("worker-1")
    >>> claim.job.id == job.id, queue.complete(claim, "file:///tmp/r.json")
    (True, True)
    >>> store.close()
    """

    def __init__(self, store: SQLJobStore, *, lease_s: float | None = None) -> None:
        if not isinstance(store, SQLJobStore):
            raise InvalidParameterError(
                f"The 'store' parameter of JobQueue must be a SQLJobStore. Got {type(store).__name__} instead."
            )
        self.store = store
        self.lease_s = _check_lease(get_settings().jobs.lease_s if lease_s is None else lease_s, "JobQueue")

    def claim(
        self, worker_id: str, *, workloads: Collection[str] | None = None, lease_s: float | None = None
    ) -> Claim | None:
        """Claim the next queued job, or return None if there is none.

        Parameters
        ----------
        worker_id : str
            Recorded on the job and its events.
        workloads : collection of str, optional
            Only claim these workloads (those this worker can run).
        lease_s : float, optional
            Overrides the queue's lease for this claim.

        Returns
        -------
        Claim or None
        """
        if not isinstance(worker_id, str) or not 0 < len(worker_id) <= 200:
            raise InvalidParameterError(
                f"The 'worker_id' parameter of JobQueue.claim must be a str of 1 to 200 characters. "
                f"Got {worker_id!r} instead."
            )
        lease = self.lease_s if lease_s is None else _check_lease(lease_s, "JobQueue.claim")
        token = uuid.uuid4().hex
        now = time.time()
        t = jobs_table
        pick = sa.select(t.c.seq).where(t.c.status == "queued")
        if workloads is not None:
            pick = pick.where(t.c.workload.in_(sorted(workloads)))
        pick = pick.order_by(t.c.priority.desc(), t.c.seq).limit(1)
        if self.store.dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        stmt = (
            t.update()
            .where(t.c.seq == pick.scalar_subquery(), t.c.status == "queued")
            .values(
                status="running",
                attempts=t.c.attempts + 1,
                worker_id=worker_id,
                claim_token=token,
                lease_expires_at=now + lease,
                started_at=now,
                updated_at=now,
            )
            .returning(*t.c)
        )
        with self.store.write() as conn:
            row = conn.execute(stmt).first()
            if row is None:
                return None
            self.store.log_event(
                conn, row.id, "claimed", worker_id=worker_id, detail=f"attempt {row.attempts}"
            )
        job = Job.from_row(row)
        _CLAIMS.labels(workload=job.workload).inc()
        return Claim(job=job, token=token, worker_id=worker_id, lease_s=lease)

    def _owned(self, claim: Claim) -> sa.ColumnElement[bool]:
        t = jobs_table
        return sa.and_(t.c.id == claim.job.id, t.c.claim_token == claim.token, t.c.status == "running")

    def heartbeat(self, claim: Claim) -> bool:
        """Extend the lease of ``claim`` by ``lease_s`` from now.

        Parameters
        ----------
        claim : Claim

        Returns
        -------
        bool
            False if the worker lost the job (lease expired and re-queued,
            cancelled, or finished elsewhere): it must drop its result.
        """
        now = time.time()
        with self.store.write() as conn:
            n = conn.execute(
                jobs_table.update()
                .where(self._owned(claim))
                .values(lease_expires_at=now + claim.lease_s, updated_at=now)
            ).rowcount
        return bool(n == 1)

    def complete(self, claim: Claim, result_ref: str) -> bool:
        """Mark the job succeeded with its result reference, if ``claim`` still owns it.

        Parameters
        ----------
        claim : Claim
        result_ref : str
            Where the result is (``file:///...``).

        Returns
        -------
        bool
            False if the claim was lost; the caller must discard its result.
        """
        return self._finish(claim, "succeeded", result_ref=result_ref, error=None)

    def fail(self, claim: Claim, error: str, *, retry: bool = False) -> bool:
        """Record a failure: re-queue if ``retry`` and attempts remain, else mark failed.

        Parameters
        ----------
        claim : Claim
        error : str
        retry : bool, default=False

        Returns
        -------
        bool
            False if the claim was lost.
        """
        if retry and claim.job.attempts < claim.job.max_attempts:
            return self._finish(claim, "queued", result_ref=None, error=error)
        return self._finish(claim, "failed", result_ref=None, error=error)

    def release(self, claim: Claim) -> bool:
        """Give a job back unstarted (worker shutting down); the attempt is not counted.

        Parameters
        ----------
        claim : Claim

        Returns
        -------
        bool
        """
        now = time.time()
        with self.store.write() as conn:
            n = conn.execute(
                jobs_table.update()
                .where(self._owned(claim))
                .values(
                    status="queued",
                    attempts=jobs_table.c.attempts - 1,
                    claim_token=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
            ).rowcount
            if n == 1:
                self.store.log_event(conn, claim.job.id, "released", worker_id=claim.worker_id)
        return bool(n == 1)

    def _finish(self, claim: Claim, status: str, *, result_ref: str | None, error: str | None) -> bool:
        now = time.time()
        terminal = status != "queued"
        with self.store.write() as conn:
            n = conn.execute(
                jobs_table.update()
                .where(self._owned(claim))
                .values(
                    status=status,
                    result_ref=result_ref,
                    error=error,
                    claim_token=None,
                    lease_expires_at=None,
                    finished_at=now if terminal else None,
                    updated_at=now,
                )
            ).rowcount
            if n == 1:
                kind = status if terminal else "requeued"
                self.store.log_event(conn, claim.job.id, kind, worker_id=claim.worker_id, detail=error)
        if n == 1:
            _FINISHED.labels(workload=claim.job.workload, status=status).inc()
            return True
        logger.warning(
            "worker %s lost job %s before finishing it (lease expired or cancelled); result dropped",
            claim.worker_id,
            claim.job.id,
        )
        return False

    def requeue_expired(self) -> int:
        """Re-queue running jobs whose lease expired; fail those out of attempts.

        Returns
        -------
        int
            How many jobs were re-queued or failed.
        """
        now = time.time()
        t = jobs_table
        expired = sa.and_(t.c.status == "running", t.c.lease_expires_at < now)
        with self.store.write() as conn:
            requeued = conn.execute(
                t.update()
                .where(expired, t.c.attempts < t.c.max_attempts)
                .values(status="queued", claim_token=None, lease_expires_at=None, updated_at=now)
                .returning(t.c.id, t.c.worker_id)
            ).all()
            failed = conn.execute(
                t.update()
                .where(expired, t.c.attempts >= t.c.max_attempts)
                .values(
                    status="failed",
                    claim_token=None,
                    lease_expires_at=None,
                    updated_at=now,
                    finished_at=now,
                    error=sa.literal(
                        "worker lost: its lease expired and the job used all its attempts "
                        "(raise max_attempts or Settings.jobs.lease_s)"
                    ),
                )
                .returning(t.c.id, t.c.worker_id)
            ).all()
            for job_id, worker in requeued:
                self.store.log_event(conn, job_id, "requeued", worker_id=worker, detail="lease expired")
            for job_id, worker in failed:
                self.store.log_event(conn, job_id, "failed", worker_id=worker, detail="lease expired")
        if requeued or failed:
            _REQUEUED.inc(len(requeued))
            logger.info("lease expired: %d job(s) re-queued, %d failed", len(requeued), len(failed))
        return len(requeued) + len(failed)

    def depth(self) -> int:
        """Jobs queued or running (what an autoscaler sizes workers from).

        Returns
        -------
        int
        """
        counts = self.store.counts()
        return counts["queued"] + counts["running"]
