"""The job service: submit workload runs over HTTP, persist them, run them on any executor.

- :class:`SQLJobStore` (SQLite WAL by default, PostgreSQL) with Alembic migrations,
- :class:`JobQueue` (claims with ``FOR UPDATE SKIP LOCKED`` / ``BEGIN IMMEDIATE``,
  leases, heartbeats, re-queue after expiry, priorities, cancellation,
  idempotent submission),
- :func:`register_function` / :func:`list_workloads` (what can be submitted),
- :func:`create_app` (the FastAPI service), :class:`Worker`, :class:`Client`,
- :class:`SlurmExecutor` (``executor="slurm"`` via submitit).

Names load lazily: importing this package imports neither FastAPI nor SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaleforge._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Claim": "scaleforge.jobs.queue",
    "Client": "scaleforge.jobs.client",
    "Job": "scaleforge.jobs.models",
    "JobEvent": "scaleforge.jobs.models",
    "JobQueue": "scaleforge.jobs.queue",
    "JobSpec": "scaleforge.jobs.models",
    "JobStore": "scaleforge.jobs.store",
    "SQLJobStore": "scaleforge.jobs.store",
    "SlurmExecutor": "scaleforge.compute.slurm",
    "Worker": "scaleforge.jobs.worker",
    "Workload": "scaleforge.jobs.registry",
    "create_app": "scaleforge.jobs.service",
    "get_workload": "scaleforge.jobs.registry",
    "list_workloads": "scaleforge.jobs.registry",
    "open_store": "scaleforge.jobs.store",
    "read_result": "scaleforge.jobs.results",
    "recommend_workers": "scaleforge.jobs.worker",
    "register_function": "scaleforge.jobs.registry",
}

__all__ = [
    "Claim",
    "Client",
    "Job",
    "JobEvent",
    "JobQueue",
    "JobSpec",
    "JobStore",
    "SQLJobStore",
    "SlurmExecutor",
    "Worker",
    "Workload",
    "create_app",
    "get_workload",
    "list_workloads",
    "open_store",
    "read_result",
    "recommend_workers",
    "register_function",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)


if TYPE_CHECKING:
    from scaleforge.compute.slurm import SlurmExecutor
    from scaleforge.jobs.client import Client
    from scaleforge.jobs.models import Job, JobEvent, JobSpec
    from scaleforge.jobs.queue import Claim, JobQueue
    from scaleforge.jobs.registry import Workload, get_workload, list_workloads, register_function
    from scaleforge.jobs.results import read_result
    from scaleforge.jobs.service import create_app
    from scaleforge.jobs.store import JobStore, SQLJobStore, open_store
    from scaleforge.jobs.worker import Worker, recommend_workers
