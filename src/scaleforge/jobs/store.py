"""The job store: the ``JobStore`` contract and its SQL implementation.

:class:`SQLJobStore` keeps jobs in SQLite (the embedded default: one file, WAL
journal, ``busy_timeout``) or PostgreSQL (psycopg 3), chosen by the URL in
``Settings.jobs.database_url``. The schema is created and upgraded by Alembic
on open (:func:`upgrade_database`), under a lock so that a service and its
workers starting together migrate once.

Write transactions on SQLite start with ``BEGIN IMMEDIATE``: the write lock is
taken up front, so two writers never both read and then fail to upgrade their
lock (SQLite's "database is locked" deadlock); they queue behind
``busy_timeout`` instead. Queue operations (claim, lease, finish) live in
:mod:`scaleforge.jobs.queue`.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from scaleforge.errors import (
    IdempotencyConflictError,
    InvalidParameterError,
    JobError,
    JobNotFoundError,
)
from scaleforge.jobs.models import (
    STATUSES,
    Job,
    JobEvent,
    JobSpec,
    events_table,
    jobs_table,
)
from scaleforge.settings import get_settings

__all__ = [
    "IdempotencyConflictError",
    "JobStore",
    "SQLJobStore",
    "normalize_url",
    "open_store",
    "upgrade_database",
]

logger = logging.getLogger(__name__)

_MIGRATION_LOCK_KEY = 0x5CA1EF0B  # pg_advisory_xact_lock key serialising migrations
_BUSY_TIMEOUT_MS = 30_000


class JobStore(abc.ABC):
    """Where jobs live: submission, lookup, listing, cancellation and counts.

    Implementations: :class:`SQLJobStore` (SQLite, PostgreSQL). Every method
    taking ``owner`` treats another owner's job as absent
    (:class:`~scaleforge.errors.JobNotFoundError`), so a service cannot leak
    jobs across tokens by forgetting a check.
    """

    @abc.abstractmethod
    def submit(self, spec: JobSpec, *, owner: str) -> tuple[Job, bool]:
        """Queue a job, or return the existing one for the same idempotency key.

        Parameters
        ----------
        spec : JobSpec
        owner : str

        Returns
        -------
        job : Job
        created : bool
            False when ``spec.idempotency_key`` matched an earlier submission.

        Raises
        ------
        IdempotencyConflictError
            If the key was used before with a different workload or parameters.
        """

    @abc.abstractmethod
    def get(self, job_id: str, *, owner: str | None = None) -> Job:
        """Return one job.

        Parameters
        ----------
        job_id : str
        owner : str, optional
            When given, a job of another owner is reported as not found.

        Returns
        -------
        Job

        Raises
        ------
        JobNotFoundError
        """

    @abc.abstractmethod
    def list_jobs(
        self,
        *,
        owner: str | None = None,
        status: str | None = None,
        limit: int = 50,
        after: str | None = None,
    ) -> list[Job]:
        """Return jobs in submission order, one page at a time.

        Parameters
        ----------
        owner : str, optional
        status : str, optional
        limit : int, default=50
            Between 1 and 1000.
        after : str, optional
            The id of the last job of the previous page.

        Returns
        -------
        list of Job
        """

    @abc.abstractmethod
    def cancel(self, job_id: str, *, owner: str | None = None) -> Job:
        """Cancel a queued or running job (a running job's worker drops its result).

        Parameters
        ----------
        job_id : str
        owner : str, optional

        Returns
        -------
        Job
            The job after cancellation (unchanged if it had already finished).
        """

    @abc.abstractmethod
    def counts(self) -> dict[str, int]:
        """Number of jobs per status (every status is a key).

        Returns
        -------
        dict of str to int
        """

    @abc.abstractmethod
    def events(self, job_id: str) -> list[JobEvent]:
        """The event log of one job, oldest first.

        Parameters
        ----------
        job_id : str

        Returns
        -------
        list of JobEvent
        """

    def close(self) -> None:  # noqa: B027 - optional hook with a documented default
        """Release connections. Default: nothing."""

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def normalize_url(url: str) -> str:
    """Turn a database URL into the SQLAlchemy URL scaleforge uses.

    ``postgresql://`` and ``postgres://`` use the psycopg 3 driver; a bare path
    means a SQLite file.

    Parameters
    ----------
    url : str

    Returns
    -------
    str

    Raises
    ------
    InvalidParameterError
        For a scheme other than sqlite or postgresql.

    Examples
    --------
    >>> normalize_url("postgres://u@db/jobs")
    'postgresql+psycopg://u@db/jobs'
    """
    if not isinstance(url, str) or not url:
        raise InvalidParameterError(
            f"The 'database_url' must be a non-empty str such as 'sqlite:///jobs.db' or "
            f"'postgresql://user@host/db'. Got {url!r} instead."
        )
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith(("postgresql+psycopg://", "sqlite://", "sqlite+pysqlite://")):
        return url
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser()}"
    raise InvalidParameterError(
        f"The 'database_url' {url.split('://')[0]!r} scheme is not supported. Use 'sqlite:///path/jobs.db' "
        "or 'postgresql://user@host:5432/db' (SCALEFORGE_JOBS__DATABASE_URL)."
    )


def _request_hash(spec: JobSpec) -> str:
    body = orjson.dumps(
        {"w": spec.workload, "p": dict(spec.params), "pr": spec.priority}, option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(body).hexdigest()


def _make_engine(url: str, *, pool_size: int, schema: str | None) -> sa.Engine:
    sa_url = sa.make_url(url)
    if sa_url.get_backend_name() == "sqlite":
        database = sa_url.database or ""
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            sa_url,
            pool_size=pool_size,
            max_overflow=pool_size,
            connect_args={"timeout": _BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            immediate = conn.get_execution_options().get("sf_immediate", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    if sa_url.get_backend_name() == "postgresql":
        connect_args: dict[str, Any] = {"connect_timeout": 10}
        if schema is not None:
            connect_args["options"] = f"-csearch_path={schema}"
        return sa.create_engine(
            sa_url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, connect_args=connect_args
        )
    raise InvalidParameterError(
        f"The job store supports SQLite and PostgreSQL URLs. Got {sa_url.get_backend_name()!r}; "
        "use 'sqlite:///jobs.db' or 'postgresql://user@host/db'."
    )


def upgrade_database(engine: sa.Engine) -> None:
    """Create or upgrade the job tables to the newest migration (Alembic ``upgrade head``).

    Concurrent callers are serialised: a PostgreSQL advisory lock, or SQLite's
    ``BEGIN IMMEDIATE`` write lock.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    """
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    with engine.connect().execution_options(sf_immediate=True) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class SQLJobStore(JobStore):
    """Jobs in SQLite (WAL) or PostgreSQL, through SQLAlchemy 2.

    Parameters
    ----------
    url : str, optional
        ``sqlite:///path/jobs.db`` or ``postgresql://user@host:5432/db``;
        defaults to ``Settings.jobs.database_url``.
    pool_size : int, optional
        Connections kept open; defaults to ``Settings.jobs.pool_size``.
    schema : str, optional
        PostgreSQL only: the schema to use (``search_path``); must exist.
    default_max_attempts : int, optional
        For jobs submitted without ``max_attempts``; defaults to ``Settings.jobs.max_attempts``.
    migrate : bool, default=True
        Run the Alembic migrations on open.

    Raises
    ------
    InvalidParameterError
        For an unsupported URL or a bad pool size.
    JobError
        If the database cannot be reached or migrated.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "jobs.db")
    >>> with SQLJobStore(f"sqlite:///{path}") as store:
    ...     job, created = store.submit(JobSpec("scaleforge.sleep", {"seconds": 0}), owner="me")
    ...     store.get(job.id).status
    'queued'
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        pool_size: int | None = None,
        schema: str | None = None,
        default_max_attempts: int | None = None,
        migrate: bool = True,
    ) -> None:
        settings = get_settings().jobs
        self.url = normalize_url(url if url is not None else settings.database_url)
        pool_size = settings.pool_size if pool_size is None else pool_size
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or not 1 <= pool_size <= 200:
            raise InvalidParameterError(
                f"The 'pool_size' parameter of SQLJobStore must be an int between 1 and 200. "
                f"Got {pool_size!r} instead (Settings.jobs.pool_size)."
            )
        attempts = settings.max_attempts if default_max_attempts is None else default_max_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 100:
            raise InvalidParameterError(
                f"The 'default_max_attempts' parameter of SQLJobStore must be an int between 1 and 100. "
                f"Got {attempts!r} instead (Settings.jobs.max_attempts)."
            )
        if schema is not None and (not isinstance(schema, str) or not schema.replace("_", "").isalnum()):
            raise InvalidParameterError(
                f"The 'schema' parameter of SQLJobStore must be an identifier (letters, digits, '_'). "
                f"Got {schema!r} instead."
            )
        self.default_max_attempts = attempts
        self.engine = _make_engine(self.url, pool_size=pool_size, schema=schema)
        if migrate:
            try:
                upgrade_database(self.engine)
            except sa.exc.SQLAlchemyError as exc:
                self.engine.dispose()
                raise JobError(
                    f"Cannot open the job database {self._safe_url()}: {exc.__class__.__name__}: {exc}. "
                    "Check Settings.jobs.database_url and that the server is reachable."
                ) from exc

    # ---- plumbing ----------------------------------------------------------------------
    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return str(self.engine.dialect.name)

    def _safe_url(self) -> str:
        return sa.make_url(self.url).render_as_string(hide_password=True)

    @contextlib.contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite); database errors become JobError.

        Yields
        ------
        sqlalchemy.Connection
        """
        try:
            with self.engine.connect().execution_options(sf_immediate=True) as conn, conn.begin():
                yield conn
        except sa.exc.SQLAlchemyError as exc:
            raise JobError(f"The job database {self._safe_url()} failed: {exc}") from exc

    @contextlib.contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A read transaction; database errors become JobError.

        Yields
        ------
        sqlalchemy.Connection
        """
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except sa.exc.SQLAlchemyError as exc:
            raise JobError(f"The job database {self._safe_url()} failed: {exc}") from exc

    def insert_statement(self) -> Any:
        """A dialect-specific INSERT on ``sf_jobs`` supporting ``on_conflict_do_nothing``."""
        if self.dialect == "postgresql":
            return postgresql.insert(jobs_table)
        return sqlite.insert(jobs_table)

    @staticmethod
    def log_event(
        conn: sa.Connection,
        job_id: str,
        kind: str,
        *,
        worker_id: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Append one event inside the caller's transaction.

        Parameters
        ----------
        conn : sqlalchemy.Connection
        job_id, kind : str
        worker_id, detail : str, optional
        """
        conn.execute(
            events_table.insert().values(
                job_id=job_id, at=time.time(), kind=kind, worker_id=worker_id, detail=detail
            )
        )

    # ---- JobStore ----------------------------------------------------------------------
    def submit(self, spec: JobSpec, *, owner: str) -> tuple[Job, bool]:
        """Queue a job, or return the existing one for the same idempotency key.

        Parameters
        ----------
        spec : JobSpec
        owner : str

        Returns
        -------
        job : Job
        created : bool

        Raises
        ------
        IdempotencyConflictError
            If the key was used before with a different request.
        """
        if not isinstance(spec, JobSpec):
            raise InvalidParameterError(
                f"The 'spec' parameter of submit must be a scaleforge.jobs.JobSpec. Got {type(spec).__name__}."
            )
        if not isinstance(owner, str) or not 0 < len(owner) <= 200:
            raise InvalidParameterError(f"The 'owner' must be a str of 1 to 200 characters. Got {owner!r}.")
        now = time.time()
        digest = _request_hash(spec)
        job_id = uuid.uuid4().hex
        values: dict[str, Any] = {
            "id": job_id,
            "workload": spec.workload,
            "params": dict(spec.params),
            "priority": spec.priority,
            "status": "queued",
            "attempts": 0,
            "max_attempts": spec.max_attempts or self.default_max_attempts,
            "owner": owner,
            "idempotency_key": spec.idempotency_key,
            "request_hash": digest,
            "created_at": now,
            "updated_at": now,
        }
        with self.write() as conn:
            stmt = self.insert_statement().values(**values)
            if spec.idempotency_key is not None:
                stmt = stmt.on_conflict_do_nothing(index_elements=["owner", "idempotency_key"])
            row = conn.execute(stmt.returning(*jobs_table.c)).first()
            if row is not None:
                self.log_event(conn, job_id, "submitted", detail=spec.workload)
                return Job.from_row(row), True
            existing = conn.execute(
                sa.select(jobs_table).where(
                    jobs_table.c.owner == owner, jobs_table.c.idempotency_key == spec.idempotency_key
                )
            ).one()
        if existing.request_hash != digest:
            raise IdempotencyConflictError(
                f"The idempotency key {spec.idempotency_key!r} was already used for job {existing.id} with a "
                "different workload, parameters or priority. Use a new key for a different request."
            )
        return Job.from_row(existing), False

    def get(self, job_id: str, *, owner: str | None = None) -> Job:
        """Return one job (see :meth:`JobStore.get`).

        Parameters
        ----------
        job_id : str
        owner : str, optional

        Returns
        -------
        Job
        """
        with self.read() as conn:
            row = conn.execute(sa.select(jobs_table).where(jobs_table.c.id == str(job_id))).first()
        if row is None or (owner is not None and row.owner != owner):
            raise JobNotFoundError(
                f"No job {job_id!r} exists for this owner. List yours with GET /v1/jobs "
                "(or `scaleforge jobs list`)."
            )
        return Job.from_row(row)

    def list_jobs(
        self,
        *,
        owner: str | None = None,
        status: str | None = None,
        limit: int = 50,
        after: str | None = None,
    ) -> list[Job]:
        """Return jobs in submission order (see :meth:`JobStore.list_jobs`).

        Parameters
        ----------
        owner, status : str, optional
        limit : int, default=50
        after : str, optional

        Returns
        -------
        list of Job
        """
        if status is not None and status not in STATUSES:
            raise InvalidParameterError(
                f"The 'status' filter must be one of {', '.join(STATUSES)}. Got {status!r} instead."
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidParameterError(f"The 'limit' must be an int between 1 and 1000. Got {limit!r}.")
        query = sa.select(jobs_table).order_by(jobs_table.c.seq).limit(limit)
        if owner is not None:
            query = query.where(jobs_table.c.owner == owner)
        if status is not None:
            query = query.where(jobs_table.c.status == status)
        with self.read() as conn:
            if after is not None:
                seq = conn.execute(sa.select(jobs_table.c.seq).where(jobs_table.c.id == after)).scalar()
                if seq is None:
                    raise JobNotFoundError(
                        f"The cursor {after!r} is not the id of a job. Pass the 'next_cursor' of the previous page."
                    )
                query = query.where(jobs_table.c.seq > seq)
            rows = conn.execute(query).all()
        return [Job.from_row(r) for r in rows]

    def cancel(self, job_id: str, *, owner: str | None = None) -> Job:
        """Cancel a queued or running job (see :meth:`JobStore.cancel`).

        Parameters
        ----------
        job_id : str
        owner : str, optional

        Returns
        -------
        Job
        """
        self.get(job_id, owner=owner)  # not found / not yours
        now = time.time()
        with self.write() as conn:
            row = conn.execute(
                jobs_table.update()
                .where(jobs_table.c.id == job_id, jobs_table.c.status.in_(("queued", "running")))
                .values(
                    status="cancelled",
                    updated_at=now,
                    finished_at=now,
                    lease_expires_at=None,
                    claim_token=None,
                    error="cancelled by its owner",
                )
                .returning(*jobs_table.c)
            ).first()
            if row is not None:
                self.log_event(conn, job_id, "cancelled")
                return Job.from_row(row)
        return self.get(job_id)

    def counts(self) -> dict[str, int]:
        """Number of jobs per status.

        Returns
        -------
        dict of str to int
        """
        with self.read() as conn:
            rows = conn.execute(
                sa.select(jobs_table.c.status, sa.func.count()).group_by(jobs_table.c.status)
            ).all()
        out = dict.fromkeys(STATUSES, 0)
        out.update({str(s): int(n) for s, n in rows})
        return out

    def events(self, job_id: str) -> list[JobEvent]:
        """The event log of one job, oldest first.

        Parameters
        ----------
        job_id : str

        Returns
        -------
        list of JobEvent
        """
        with self.read() as conn:
            rows = conn.execute(
                sa.select(events_table).where(events_table.c.job_id == job_id).order_by(events_table.c.seq)
            ).all()
        return [JobEvent(r.job_id, float(r.at), r.kind, r.worker_id, r.detail) for r in rows]

    def close(self) -> None:
        """Dispose of the connection pool."""
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"SQLJobStore({self._safe_url()!r})"


def open_store(url: str | None = None, **options: Any) -> SQLJobStore:
    """Open the job store at ``url`` (default ``Settings.jobs.database_url``), migrating it.

    Parameters
    ----------
    url : str, optional
    **options
        Passed to :class:`SQLJobStore` (``pool_size``, ``schema``, ...).

    Returns
    -------
    SQLJobStore
    """
    return SQLJobStore(url, **options)
