"""Benchmark the job store: submissions/s, claims/s under 4 competing workers, jobs lost to kill -9.

Side by side, interleaved and repeated:

- submit: ``SQLJobStore.submit`` (idempotency key, request hash, event row, one transaction)
  vs a bare SQLAlchemy Core ``INSERT`` of the same row (the floor any job store pays);
- claim with 4 workers on PostgreSQL: our ``UPDATE ... WHERE seq = (SELECT ... FOR UPDATE
  SKIP LOCKED) RETURNING`` vs the same claim with a plain ``FOR UPDATE`` (what you get without
  SKIP LOCKED: workers queue on the head row);
- lost jobs: worker subprocesses running real jobs are SIGKILLed repeatedly and restarted; every
  job must still succeed (``lost_jobs_after_kills`` must be 0).

Run: ``python benchmarks/bench_jobs.py [--quick]``. The last stdout line is one JSON object.
Setup (schemas, pre-filled queues) stays outside the timed regions.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from scaleforge.jobs.models import JobSpec, jobs_table
from scaleforge.jobs.queue import JobQueue
from scaleforge.jobs.store import SQLJobStore

PG_URL = os.environ.get("SCALEFORGE_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def pg_schema() -> Iterator[str]:
    schema = f"sf_bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(SQLJobStore(PG_URL, migrate=False).url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield schema
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        engine.dispose()


def postgres_available() -> bool:
    try:
        engine = sa.create_engine(SQLJobStore(PG_URL, migrate=False).url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@contextmanager
def open_store(kind: str, tmp: Path) -> Iterator[SQLJobStore]:
    if kind == "sqlite":
        store = SQLJobStore(f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:8]}.db'}")
        try:
            yield store
        finally:
            store.close()
        return
    with pg_schema() as schema:
        store = SQLJobStore(PG_URL, schema=schema, pool_size=8)
        try:
            yield store
        finally:
            store.close()


# ---- submit ------------------------------------------------------------------------------
def submit_ours(store: SQLJobStore, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        store.submit(JobSpec("scaleforge.sleep", {"seconds": 0}, idempotency_key=f"k{i}"), owner="bench")
    return n / (time.perf_counter() - t0)


def submit_bare_insert(store: SQLJobStore, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        now = time.time()
        with store.write() as conn:
            conn.execute(
                jobs_table.insert().values(
                    id=uuid.uuid4().hex, workload="scaleforge.sleep", params={"seconds": 0}, priority=0,
                    status="queued", attempts=0, max_attempts=3, owner="bench", idempotency_key=f"k{i}",
                    request_hash="", created_at=now, updated_at=now,
                )
            )  # fmt: skip
    return n / (time.perf_counter() - t0)


# ---- claim -------------------------------------------------------------------------------
def _naive_claim(store: SQLJobStore, worker: str) -> bool:
    t = jobs_table
    with store.write() as conn:
        seq = conn.execute(
            sa.select(t.c.seq)
            .where(t.c.status == "queued")
            .order_by(t.c.priority.desc(), t.c.seq)
            .limit(1)
            .with_for_update()
        ).scalar()
        if seq is None:
            return False
        conn.execute(
            t.update()
            .where(t.c.seq == seq)
            .values(status="running", worker_id=worker, attempts=t.c.attempts + 1, updated_at=time.time())
        )
    return True


def claims_per_s(store: SQLJobStore, n_jobs: int, n_workers: int, naive: bool) -> float:
    for i in range(n_jobs):
        store.submit(JobSpec("scaleforge.sleep", {"seconds": 0}, idempotency_key=f"c{i}"), owner="bench")
    queue = JobQueue(store, lease_s=600)
    counts = [0] * n_workers
    start = threading.Barrier(n_workers + 1)

    def work(k: int) -> None:
        start.wait()
        while True:
            got = _naive_claim(store, f"w{k}") if naive else queue.claim(f"w{k}") is not None
            if not got:
                return
            counts[k] += 1

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_workers)]
    for th in threads:
        th.start()
    start.wait()
    t0 = time.perf_counter()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t0
    if sum(counts) != n_jobs:
        raise RuntimeError(f"claimed {sum(counts)} of {n_jobs} jobs")
    return n_jobs / elapsed


# ---- kills -------------------------------------------------------------------------------
def lost_after_kills(kind: str, tmp: Path, n_jobs: int, rounds: int) -> tuple[int, int]:
    """Run jobs on 2 worker processes, SIGKILL one every ~second; return (lost jobs, kills)."""
    with open_store(kind, tmp) as store:
        for _i in range(n_jobs):
            store.submit(JobSpec("scaleforge.sleep", {"seconds": 0.2}, max_attempts=20), owner="bench")
        args_db = ["--database-url", store.url]
        if store.dialect == "postgresql":
            with store.read() as conn:
                args_db += ["--schema", str(conn.exec_driver_sql("SHOW search_path").scalar())]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCALEFORGE_")}
        env["SCALEFORGE_JOBS__RESULT_DIR"] = str(tmp / "results")
        cmd = [sys.executable, "-c", "from scaleforge.cli.jobs import app; app(prog_name='scaleforge jobs')"]

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [*cmd, "worker", "--executor", "threads", "--concurrency", "2", "--lease-s", "1",
                 "--poll-interval-s", "0.05", *args_db],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

        workers = [start(), start()]
        kills = 0
        try:
            for r in range(rounds):
                time.sleep(1.0)
                victim = workers[r % 2]
                os.killpg(victim.pid, signal.SIGKILL)
                victim.wait()
                kills += 1
                workers[r % 2] = start()
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                counts = store.counts()
                if counts["queued"] + counts["running"] == 0:
                    break
                time.sleep(0.2)
        finally:
            for w in workers:
                if w.poll() is None:
                    os.killpg(w.pid, signal.SIGKILL)
                    w.wait()
        counts = store.counts()
        return n_jobs - counts["succeeded"], kills


# ---- driver ------------------------------------------------------------------------------
def interleave(impls: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in impls}
    for r in range(repeats):
        order = list(impls) if r % 2 == 0 else list(reversed(impls))
        for name in order:
            out[name].append(impls[name]())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run (~1 minute)")
    parser.add_argument("--repeats", type=int, default=None)
    opts = parser.parse_args()
    n_submit = 150 if opts.quick else 1000
    n_claim = 200 if opts.quick else 2000
    repeats = opts.repeats or (3 if opts.quick else 5)
    kill_jobs, kill_rounds = (40, 3) if opts.quick else (200, 8)
    have_pg = postgres_available()
    metrics: dict[str, Any] = {}
    rows: list[tuple[str, str, float, float, float]] = []

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)

        def run_with(kind: str, fn: Callable[[SQLJobStore], float]) -> Callable[[], float]:
            def go() -> float:
                with open_store(kind, tmp) as store:
                    return fn(store)

            return go

        kinds = ["sqlite", *(["postgres"] if have_pg else [])]
        for kind in kinds:
            res = interleave(
                {
                    "scaleforge submit": run_with(kind, lambda s: submit_ours(s, n_submit)),
                    "bare INSERT": run_with(kind, lambda s: submit_bare_insert(s, n_submit)),
                },
                repeats,
            )
            ours, base = statistics.median(res["scaleforge submit"]), statistics.median(res["bare INSERT"])
            rows.append((f"submit/s {kind}", "scaleforge vs bare INSERT", ours, base, ours / base))
            metrics[f"submit_per_s_{kind}"] = round(ours, 1)
        if have_pg:
            res = interleave(
                {
                    "SKIP LOCKED": run_with("postgres", lambda s: claims_per_s(s, n_claim, 4, naive=False)),
                    "FOR UPDATE": run_with("postgres", lambda s: claims_per_s(s, n_claim, 4, naive=True)),
                },
                repeats,
            )
            ours, base = statistics.median(res["SKIP LOCKED"]), statistics.median(res["FOR UPDATE"])
            rows.append(
                ("claim/s postgres, 4 workers", "SKIP LOCKED vs plain FOR UPDATE", ours, base, ours / base)
            )
            metrics["claim_per_s_postgres_4_workers"] = round(ours, 1)
        else:
            metrics["submit_per_s_postgres"] = None
            metrics["claim_per_s_postgres_4_workers"] = None
        res_c = interleave(
            {"SQLite": run_with("sqlite", lambda s: claims_per_s(s, n_claim, 4, naive=False))}, repeats
        )
        rows.append(
            (
                "claim/s sqlite, 4 workers",
                "BEGIN IMMEDIATE claim",
                statistics.median(res_c["SQLite"]),
                float("nan"),
                float("nan"),
            )
        )
        metrics["claim_per_s_sqlite_4_workers"] = round(statistics.median(res_c["SQLite"]), 1)

        lost_total, kills_total = 0, 0
        for kind in kinds:
            lost, kills = lost_after_kills(kind, tmp, kill_jobs, kill_rounds)
            rows.append(
                (
                    f"lost jobs after {kills} kill -9, {kind}",
                    f"{kill_jobs} jobs",
                    float(lost),
                    float("nan"),
                    float("nan"),
                )
            )
            lost_total += lost
            kills_total += kills
        metrics["lost_jobs_after_kills"] = lost_total
        metrics["kills"] = kills_total

    print(f"{'measure':40s} {'comparison':34s} {'ours (median)':>14s} {'baseline':>10s} {'ratio':>7s}")
    for measure, comparison, ours, base, ratio in rows:
        print(f"{measure:40s} {comparison:34s} {ours:14.1f} {base:10.1f} {ratio:7.2f}")
    print(f"(medians of {repeats} interleaved repeats; submit n={n_submit}, claim n={n_claim})")
    print(json.dumps({"bench": "jobs", "metrics": metrics}))


if __name__ == "__main__":
    main()
