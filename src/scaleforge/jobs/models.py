"""Tables of the job store and the value types read from them.

Two tables: ``sf_jobs`` (one row per submitted job) and ``sf_job_events`` (an
append-only log: submitted, claimed, heartbeat-lost, requeued, succeeded,
failed, cancelled). Timestamps are UNIX seconds (float) so that lease
arithmetic is the same on SQLite and PostgreSQL. Results are *referenced*
(``result_ref``: a file URI in the result directory), never stored as blobs.

The schema is created and upgraded by the Alembic migrations in
:mod:`scaleforge.jobs.migrations`; :data:`metadata` is what they target.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal

import sqlalchemy as sa

from scaleforge.errors import InvalidParameterError

__all__ = [
    "STATUSES",
    "TERMINAL_STATUSES",
    "Job",
    "JobEvent",
    "JobSpec",
    "JobStatus",
    "events_table",
    "jobs_table",
    "metadata",
]

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
STATUSES: tuple[str, ...] = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})

metadata = sa.MetaData()

jobs_table = sa.Table(
    "sf_jobs",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(32), nullable=False, unique=True),
    sa.Column("workload", sa.String(200), nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("lease_expires_at", sa.Float, nullable=True),
    sa.Column("worker_id", sa.String(200), nullable=True),
    sa.Column("claim_token", sa.String(32), nullable=True),
    sa.Column("result_ref", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.UniqueConstraint("owner", "idempotency_key", name="uq_sf_jobs_owner_key"),
    # claim: next queued job by priority then age
    sa.Index("ix_sf_jobs_claim", "status", sa.desc("priority"), "seq"),
    # GET /v1/jobs?owner=&status= paginated by seq
    sa.Index("ix_sf_jobs_owner_status", "owner", "status", "seq"),
    # lease sweep: running jobs whose lease expired
    sa.Index("ix_sf_jobs_lease", "status", "lease_expires_at"),
)

events_table = sa.Table(
    "sf_job_events",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(32), nullable=False, index=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("worker_id", sa.String(200), nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
)


@dataclasses.dataclass(frozen=True, slots=True)
class JobSpec:
    """What a client asks to run.

    Parameters
    ----------
    workload : str
        A name listed by :func:`scaleforge.jobs.registry.list_workloads`.
    params : mapping, default={}
        Keyword arguments, validated against the workload's schema before queuing.
    priority : int, default=0
        Higher runs first; ties run in submission order. Between -1000 and 1000.
    idempotency_key : str, optional
        A client-chosen key (<= 200 characters); submitting the same key again
        returns the first job instead of creating another.
    max_attempts : int, optional
        How many times the job may be claimed (lease expiries count); defaults
        to ``Settings.jobs.max_attempts``.
    """

    workload: str
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    priority: int = 0
    idempotency_key: str | None = None
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.workload, str) or not 0 < len(self.workload) <= 200:
            raise InvalidParameterError(
                f"The 'workload' parameter of JobSpec must be a non-empty str of at most 200 characters. "
                f"Got {self.workload!r} instead; GET /v1/workloads lists the names."
            )
        if not isinstance(self.params, Mapping):
            raise InvalidParameterError(
                f"The 'params' parameter of JobSpec must be a mapping of parameter names to values. "
                f"Got {type(self.params).__name__} instead."
            )
        if isinstance(self.priority, bool) or not isinstance(self.priority, int) or abs(self.priority) > 1000:
            raise InvalidParameterError(
                f"The 'priority' parameter of JobSpec must be an int between -1000 and 1000. "
                f"Got {self.priority!r} instead."
            )
        key = self.idempotency_key
        if key is not None and (not isinstance(key, str) or not 0 < len(key) <= 200):
            raise InvalidParameterError(
                f"The 'idempotency_key' parameter of JobSpec must be None or a str of 1 to 200 characters. "
                f"Got {key!r} instead."
            )
        attempts = self.max_attempts
        if attempts is not None and (
            isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 100
        ):
            raise InvalidParameterError(
                f"The 'max_attempts' parameter of JobSpec must be None or an int between 1 and 100. "
                f"Got {attempts!r} instead."
            )


def _iso(ts: float | None) -> float | None:
    return None if ts is None or not math.isfinite(ts) else ts


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    """One job as stored: what was asked, where it is, and where its result went.

    Attributes
    ----------
    id : str
        32 hex characters.
    workload : str
    params : dict
    priority : int
    status : {"queued", "running", "succeeded", "failed", "cancelled"}
    attempts : int
        How many times a worker claimed it.
    max_attempts : int
    owner : str
    idempotency_key : str or None
    created_at, updated_at : float
        UNIX seconds.
    started_at, finished_at, lease_expires_at : float or None
    worker_id : str or None
        The worker holding (or that last held) the job.
    result_ref : str or None
        Where the result is (``file:///...``), once succeeded.
    error : str or None
        Why it failed or was cancelled.
    """

    id: str
    workload: str
    params: dict[str, Any]
    priority: int
    status: str
    attempts: int
    max_attempts: int
    owner: str
    idempotency_key: str | None
    created_at: float
    updated_at: float
    started_at: float | None = None
    finished_at: float | None = None
    lease_expires_at: float | None = None
    worker_id: str | None = None
    result_ref: str | None = None
    error: str | None = None

    @property
    def done(self) -> bool:
        """True once the job succeeded, failed or was cancelled."""
        return self.status in TERMINAL_STATUSES

    def to_dict(self) -> dict[str, Any]:
        """Return the job as a JSON-ready dict (the service's wire format).

        Returns
        -------
        dict
        """
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        """Build a job from :meth:`to_dict` output (unknown keys are ignored).

        Parameters
        ----------
        data : mapping

        Returns
        -------
        Job
        """
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_row(cls, row: Any) -> Job:
        """Build a job from a ``sf_jobs`` row.

        Parameters
        ----------
        row : sqlalchemy Row or mapping

        Returns
        -------
        Job
        """
        m = row._mapping if hasattr(row, "_mapping") else row
        return cls(
            id=m["id"],
            workload=m["workload"],
            params=dict(m["params"] or {}),
            priority=int(m["priority"]),
            status=m["status"],
            attempts=int(m["attempts"]),
            max_attempts=int(m["max_attempts"]),
            owner=m["owner"],
            idempotency_key=m["idempotency_key"],
            created_at=float(m["created_at"]),
            updated_at=float(m["updated_at"]),
            started_at=_iso(m["started_at"]),
            finished_at=_iso(m["finished_at"]),
            lease_expires_at=_iso(m["lease_expires_at"]),
            worker_id=m["worker_id"],
            result_ref=m["result_ref"],
            error=m["error"],
        )


@dataclasses.dataclass(frozen=True, slots=True)
class JobEvent:
    """One entry of a job's event log.

    Attributes
    ----------
    job_id : str
    at : float
        UNIX seconds.
    kind : str
        ``submitted``, ``claimed``, ``requeued``, ``succeeded``, ``failed``, ``cancelled``, ``lease_lost``.
    worker_id : str or None
    detail : str or None
    """

    job_id: str
    at: float
    kind: str
    worker_id: str | None = None
    detail: str | None = None
