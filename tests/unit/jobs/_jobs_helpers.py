"""Shared helpers for the job service tests: databases, registered test functions, subprocesses.

Imported by the unit tests (SQLite) and by the integration tests (PostgreSQL,
faults, schemathesis), which add this directory to ``sys.path``. Worker and
service subprocesses import it too (``--import _jobs_helpers``) so that the
test functions below are submittable and runnable there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scaleforge.jobs.registry import register_function
from scaleforge.jobs.store import SQLJobStore

HERE = Path(__file__).resolve().parent


# ---- functions the tests submit ----------------------------------------------------------
def record(
    tag: str = "",
    seconds: float = 0.0,
    log: str = "",
    first_run_marker: str = "",
    first_run_seconds: float = 0.0,
    fail: bool = False,
) -> dict[str, Any]:
    """Append start/end lines to ``log`` (O_APPEND, one write each) and sleep in between.

    If ``first_run_marker`` names a file that does not exist yet, create it and
    sleep ``first_run_seconds`` instead (the run a test kills).
    """
    pid = os.getpid()
    ident = f"{pid}-{threading.get_ident()}-{uuid.uuid4().hex[:6]}"
    duration = seconds
    if first_run_marker:
        try:
            fd = os.open(first_run_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.close(fd)
            duration = first_run_seconds
        except FileExistsError:
            pass
    _append(log, {"tag": tag, "run": ident, "event": "start", "t": time.time()})
    time.sleep(duration)
    _append(log, {"tag": tag, "run": ident, "event": "end", "t": time.time()})
    if fail:
        raise ValueError(f"job {tag!r} was asked to fail")
    return {"tag": tag, "pid": pid}


def _append(log: str, entry: dict[str, Any]) -> None:
    if not log:
        return
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (json.dumps(entry) + "\n").encode())
    finally:
        os.close(fd)


def not_json() -> object:
    """Return something JSON cannot encode (but pickle can)."""
    return {1, 2, 3}


def unpicklable() -> object:
    """Return something neither JSON nor pickle can encode."""
    return threading.Lock()


def arrays(n: int = 4, seed: int = 0) -> dict[str, Any]:
    """Return a dict of arrays of several dtypes (a known answer: the seed fixes them)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return {
        "u": rng.standard_normal((n, 3)),
        "ids": np.arange(n, dtype=np.int32),
        "mask": np.arange(n) % 2 == 0,
        "edge": np.array([np.nan, np.inf, -np.inf, 1.5]),
        "z": np.array([1 + 2j, -3.5j]),
        "meta": {"n": n, "note": "ok"},
    }


def one_array(n: int = 5) -> Any:
    """Return ``arange(n)`` as float32 (one array: servable as .npy)."""
    import numpy as np

    return np.arange(n, dtype=np.float32).reshape(1, n)


register_function("jobstest.record", record)
register_function("jobstest.not_json", not_json)
register_function("jobstest.unpicklable", unpicklable)
register_function("jobstest.arrays", arrays)
register_function("jobstest.one_array", one_array)

#: The cache signing key every test process shares (result frames are signed with it).
TEST_HMAC_KEY = "0123456789abcdef" * 4


@pytest.fixture
def signing_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point Settings.cache.hmac_key at :data:`TEST_HMAC_KEY` (no key file in the home directory)."""
    from scaleforge.settings import set_settings

    monkeypatch.setenv("SCALEFORGE_CACHE__HMAC_KEY", TEST_HMAC_KEY)
    set_settings(None)
    yield TEST_HMAC_KEY
    set_settings(None)


def read_runs(log: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Parse a ``record`` log into ``{tag: {run: {"start": t, "end": t}}}``."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    if not log.exists():
        return out
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        out.setdefault(entry["tag"], {}).setdefault(entry["run"], {})[entry["event"]] = entry["t"]
    return out


# ---- databases ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DB:
    """Where a test's job store lives."""

    url: str
    schema: str | None = None

    def open(self, **options: Any) -> SQLJobStore:
        return SQLJobStore(self.url, schema=self.schema, **options)

    def cli_args(self) -> list[str]:
        args = ["--database-url", self.url]
        return [*args, "--schema", self.schema] if self.schema else args


def sqlite_db(tmp_path: Path) -> DB:
    return DB(f"sqlite:///{tmp_path / 'jobs.db'}")


@contextlib.contextmanager
def postgres_db(database_url: str) -> Iterator[DB]:
    """A fresh schema ``sf_test_<uuid>`` for one test, dropped afterwards."""
    import sqlalchemy as sa

    schema = f"sf_test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield DB(database_url, schema)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        engine.dispose()


# ---- subprocesses ------------------------------------------------------------------------
_CLI = "import sys; from scaleforge.cli.jobs import app; app(prog_name='scaleforge jobs')"


def _env(tmp_path: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCALEFORGE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["SCALEFORGE_JOBS__RESULT_DIR"] = str(tmp_path / "results")
    env["SCALEFORGE_CACHE__HMAC_KEY"] = TEST_HMAC_KEY
    env.update(extra or {})
    return env


def start_cli(
    args: list[str], tmp_path: Path, name: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Run ``scaleforge jobs <args>`` in its own process group, logging to ``tmp_path/name.log``."""
    log = open(tmp_path / f"{name}.log", "ab")  # noqa: SIM115 - closed when the process is reaped
    proc = subprocess.Popen(
        [sys.executable, "-c", _CLI, *args],
        env=_env(tmp_path, env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    return proc


def start_worker(
    db: DB,
    tmp_path: Path,
    name: str,
    *,
    lease_s: float,
    concurrency: int = 1,
    extra: list[str] | None = None,
    executor: str = "threads",
) -> subprocess.Popen[bytes]:
    args = [
        "worker", "--executor", executor, "--concurrency", str(concurrency), "--lease-s", str(lease_s),
        "--poll-interval-s", "0.05", "--import", "_jobs_helpers", "--worker-id", name, *db.cli_args(),
        *(extra or []),
    ]  # fmt: skip
    return start_cli(args, tmp_path, name)


def start_service(
    db: DB, tmp_path: Path, port: int, tokens: dict[str, str], name: str = "service"
) -> subprocess.Popen[bytes]:
    """Start ``scaleforge jobs serve`` on ``port`` and wait until ``/health`` answers."""
    import httpx

    env = {"SCALEFORGE_JOBS__TOKENS": json.dumps(tokens)}
    args = ["serve", "--port", str(port), "--import", "_jobs_helpers", *db.cli_args()]
    proc = start_cli(args, tmp_path, name, env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"service exited with {proc.returncode}: {(tmp_path / f'{name}.log').read_text()}"
            )
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    kill9(proc)
    raise TimeoutError(f"service on port {port} did not become healthy")


def kill9(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and its whole group (its executor's children too)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def wait_for(predicate: Any, timeout_s: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")


def intervals_overlap(runs: dict[str, dict[str, float]]) -> bool:
    """True if two runs of one job overlapped in time."""
    spans = sorted((r["start"], r.get("end", float("inf"))) for r in runs.values())
    return any(b_start < a_end for (_, a_end), (b_start, _) in itertools.pairwise(spans))


@contextlib.contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Run ``app`` on uvicorn in a thread on a free loopback port; yield its base URL."""
    import uvicorn

    from scaleforge.testing.fixtures import free_port, wait_for_port

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port(port, timeout_s=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
