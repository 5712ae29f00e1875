"""Helpers of ``test_e2e_sweeps.py``: driver subprocesses, bounded polling, call logs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import scaleforge as sf

__all__ = [
    "SIGNING_KEY",
    "count_calls",
    "finish",
    "poll_until",
    "read_calls",
    "reap_drivers",
    "start_driver",
]

#: The signing key every tier of these tests uses (never the user's key file).
SIGNING_KEY = bytes(range(32))
_SRC = str(Path(sf.__file__).parents[1])
_STARTED: list[subprocess.Popen[bytes]] = []


def read_calls(log: Path) -> list[int]:
    """Items recorded in a call log (one ``O_APPEND`` line per finished computation)."""
    if not log.exists():
        return []
    return [int(v) for v in log.read_text().split()]


def count_calls(log: Path) -> int:
    """Number of computations recorded in ``log``."""
    return len(read_calls(log))


def poll_until(predicate: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    """Poll ``predicate`` every 10 ms until true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.01)


def start_driver(tmp_path: Path, name: str, code: str) -> subprocess.Popen[bytes]:
    """Write ``code`` to ``tmp_path/name.py`` and run it in a fresh interpreter (its own session).

    The script's standard output and error go to ``name.out`` / ``name.err``
    (files, not pipes, so a killed driver cannot block on a full pipe).
    """
    script = tmp_path / f"{name}.py"
    script.write_text(textwrap.dedent(code))
    env = {**os.environ, "PYTHONPATH": _SRC, "PYTHONUNBUFFERED": "1"}
    with open(tmp_path / f"{name}.out", "wb") as out, open(tmp_path / f"{name}.err", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(script)],
            env=env,
            stdout=out,
            stderr=err,
            cwd=str(tmp_path),
            start_new_session=True,
        )
    _STARTED.append(proc)
    return proc


def reap_drivers() -> None:
    """SIGKILL the sessions of drivers still running (a failed test) and wait for them."""
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def finish(proc: subprocess.Popen[bytes], tmp_path: Path, name: str, timeout_s: float = 90.0) -> Any:
    """Wait for a driver, check it succeeded, and return the JSON of its last stdout line."""
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        raise AssertionError(
            f"driver {name} did not finish within {timeout_s} s:\n"
            + (tmp_path / f"{name}.err").read_text()[-3000:]
        ) from None
    err = (tmp_path / f"{name}.err").read_text()
    assert proc.returncode == 0, f"driver {name} exited with {proc.returncode}:\n{err[-3000:]}"
    lines = (tmp_path / f"{name}.out").read_text().strip().splitlines()
    assert lines, f"driver {name} printed nothing:\n{err[-3000:]}"
    return json.loads(lines[-1])
