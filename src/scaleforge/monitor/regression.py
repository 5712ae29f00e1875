"""Benchmark history and statistical regression detection between runs.

Every benchmark script prints, as its last stdout line, one JSON object
``{"bench": "<layer>", "metrics": {"<figure>": value-or-list, ...}}``, optionally
with ``"samples": {"<figure>": [repeat, ...]}`` holding the per-repeat values
its headline figures summarise (then one run is enough for a statistical test).
:class:`BenchHistory` appends such results, with the git commit and the
machine, to a JSON-lines file; :func:`compare` says which figures of run set B
regressed against run set A:

- with at least 3 samples on each side, a one-sided Mann-Whitney U test per
  direction (no normality assumption; with 3 vs 3 only complete separation
  reaches p = 0.05);
- with fewer, a bootstrap percentile interval on the ratio of medians
  (needs 2 samples a side; a single sample each is reported as insufficient).

Samples of a figure are all values recorded for it across the selected runs:
its ``samples`` list when the run has one, else its ``metrics`` value(s). There is no fixed percentage
threshold: noise decides.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scaleforge._validation import check_number
from scaleforge.errors import InvalidParameterError

__all__ = [
    "BenchHistory",
    "FigureComparison",
    "compare",
    "git_commit",
    "lower_is_better",
    "machine_info",
    "parse_bench_output",
]

logger = logging.getLogger(__name__)

_HIGHER_BETTER = (
    "recall",
    "precision",
    "accuracy",
    "throughput",
    "per_s",
    "per_sec",
    "_ops",
    "rps",
    "qps",
    "speedup",
    "hit_rate",
    "efficiency",
    "score",
    "r2",
)
_LOWER_BETTER = (
    "_ns",
    "_us",
    "_ms",
    "_s",
    "seconds",
    "latency",
    "time",
    "_bytes",
    "overhead",
    "false_alarm",
    "error",
    "_pct",
    "memory",
    "rss",
    "loss",
)


def lower_is_better(name: str) -> bool | None:
    """Guess whether a smaller value of figure ``name`` is better (``None`` when unknown).

    Examples
    --------
    >>> lower_is_better("counter_inc_ns"), lower_is_better("tasks_per_s"), lower_is_better("widgets")
    (True, False, None)
    """
    low = name.lower()
    if any(k in low for k in _HIGHER_BETTER):
        return False
    if any(low.endswith(k) or k in low for k in _LOWER_BETTER):
        return True
    return None


def parse_bench_output(text: str) -> dict[str, Any]:
    """Return the result object from a benchmark's output (its last non-empty line).

    Parameters
    ----------
    text : str
        Whole stdout of a benchmark, or just the JSON line.

    Returns
    -------
    dict
        ``{"bench": str, "metrics": {str: float or list of float}}``.

    Raises
    ------
    InvalidParameterError
        If the last line is not such an object.
    """
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise InvalidParameterError(
            "The benchmark output is empty; expected its last line to be "
            '{"bench": "<layer>", "metrics": {...}}.'
        )
    last = lines[-1]
    try:
        obj = json.loads(last)
    except json.JSONDecodeError as exc:
        raise InvalidParameterError(
            f"The last line of the benchmark output is not JSON ({exc}): {last[:120]!r}. "
            'Benchmarks must end with one line {"bench": "<layer>", "metrics": {...}}.'
        ) from exc
    _check_result(obj)
    return dict(obj)


def _check_result(obj: object) -> None:
    if (
        not isinstance(obj, dict)
        or not isinstance(obj.get("bench"), str)
        or not isinstance(obj.get("metrics"), dict)
    ):
        raise InvalidParameterError(
            f'A benchmark result must be an object {{"bench": str, "metrics": {{...}}}}. Got {str(obj)[:160]!r} instead.'
        )
    samples = obj.get("samples", {})
    if not isinstance(samples, dict):
        raise InvalidParameterError(
            f"The optional 'samples' of benchmark {obj['bench']!r} must map figure names to lists of numbers. "
            f"Got {samples!r} instead."
        )
    for key, value in [*obj["metrics"].items(), *samples.items()]:
        values = value if isinstance(value, list) else [value]
        if not all((isinstance(v, (int, float)) and not isinstance(v, bool)) or v is None for v in values):
            raise InvalidParameterError(
                f"Metric {key!r} of benchmark {obj['bench']!r} must be a number or a list of numbers. "
                f"Got {value!r} instead."
            )


def git_commit(cwd: str | os.PathLike[str] | None = None) -> str | None:
    """The current git commit hash (with ``-dirty`` if the tree has changes), or ``None``."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
        )
        if head.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = head.stdout.strip()
    return commit + ("-dirty" if status.stdout.strip() else "")


def machine_info() -> dict[str, Any]:
    """Host name, OS, Python, CPU model and count, memory: enough to tell machines apart."""
    info: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        info["cpu"] = platform.processor()
    try:
        import psutil

        info["memory_bytes"] = int(psutil.virtual_memory().total)
    except Exception:  # psutil is a core dependency, but never fail a history write on it
        pass
    return info


class BenchHistory:
    """A JSON-lines file of benchmark runs.

    Parameters
    ----------
    path : path-like
        The history file (created on first append).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> h = BenchHistory(pathlib.Path(tempfile.mkdtemp()) / "h.jsonl")
    >>> rec = h.append({"bench": "demo", "metrics": {"t_s": 1.0}}, commit="abc123", machine={})
    >>> [r["commit"] for r in h.records()]
    ['abc123']
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def append(
        self,
        result: Mapping[str, Any],
        *,
        commit: str | None = None,
        label: str | None = None,
        machine: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Add one benchmark result; ``commit`` and ``machine`` default to this checkout and host.

        Returns
        -------
        dict
            The stored record, with its ``id``.
        """
        _check_result(dict(result))
        record = {
            "id": uuid.uuid4().hex[:12],
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "bench": result["bench"],
            "metrics": dict(result["metrics"]),
            "samples": dict(result.get("samples", {})),
            "commit": commit if commit is not None else git_commit(),
            "label": label,
            "machine": dict(machine) if machine is not None else machine_info(),
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, sort_keys=True) + "\n")
        except OSError as exc:
            raise InvalidParameterError(
                f"Cannot write the benchmark history file {str(self.path)!r}: {exc}. Pass a writable --history path."
            ) from exc
        return record

    def records(self, bench: str | None = None) -> list[dict[str, Any]]:
        """All records, oldest first (optionally of one benchmark).

        Raises
        ------
        InvalidParameterError
            If the file cannot be read or a line is not a valid record.
        """
        if not self.path.exists():
            return []
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidParameterError(
                f"Cannot read the benchmark history file {str(self.path)!r}: {exc}. "
                "Check the path and its permissions, or pass another --history."
            ) from exc
        out = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                _check_result(rec)
            except (json.JSONDecodeError, InvalidParameterError) as exc:
                raise InvalidParameterError(
                    f"Line {lineno} of the benchmark history file {str(self.path)!r} is not a valid record "
                    f"({exc}). Fix or delete that line."
                ) from exc
            if bench is None or rec["bench"] == bench:
                out.append(rec)
        return out

    def select(self, ref: str, bench: str | None = None) -> list[dict[str, Any]]:
        """Records matching ``ref``: a record id, a label, a commit prefix (>= 4 chars) or ``"latest"``.

        ``"latest"`` is every record of the newest commit; ``"previous"`` of the commit before it.

        Raises
        ------
        InvalidParameterError
            When nothing matches (the message lists what exists).
        """
        recs = self.records(bench)
        if ref in ("latest", "previous"):
            commits: list[str] = []
            for r in recs:
                c = str(r.get("commit"))
                if c in commits:
                    commits.remove(c)
                commits.append(c)
            idx = -1 if ref == "latest" else -2
            chosen = [r for r in recs if len(commits) >= -idx and str(r.get("commit")) == commits[idx]]
        else:
            chosen = [
                r
                for r in recs
                if r.get("id") == ref
                or (r.get("label") is not None and r.get("label") == ref)
                or (len(ref) >= 4 and str(r.get("commit") or "").startswith(ref))
            ]
        if not chosen:
            known = sorted({str(r.get("label") or (r.get("commit") or "")[:10]) for r in recs})[:10]
            raise InvalidParameterError(
                f"No benchmark run in {str(self.path)!r} matches {ref!r}"
                + (f" for bench {bench!r}" if bench else "")
                + f". Use a run id, a label, a commit prefix of 4+ characters, 'latest' or 'previous'. "
                f"Known: {', '.join(known) or 'none'}."
            )
        return chosen


@dataclass(frozen=True, slots=True)
class FigureComparison:
    """The verdict on one figure of one benchmark.

    Attributes
    ----------
    bench, metric : str
    n_a, n_b : int
        Samples on each side.
    median_a, median_b : float
    ratio : float
        ``median_b / median_a``.
    method : {"mannwhitneyu", "bootstrap", "none"}
    p_value : float or None
        Mann-Whitney U p-value of the direction found (one-sided).
    ci_low, ci_high : float or None
        Bootstrap interval on the ratio.
    verdict : {"regressed", "improved", "changed", "unchanged", "insufficient"}
        ``changed`` when the direction of "better" is unknown.
    """

    bench: str
    metric: str
    n_a: int
    n_b: int
    median_a: float
    median_b: float
    ratio: float
    method: str
    p_value: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


def _samples(
    records: Sequence[Mapping[str, Any]], bench: str, metric: str
) -> np.ndarray[Any, np.dtype[np.float64]]:
    vals: list[float] = []
    for r in records:
        if r.get("bench") != bench:
            continue
        repeats = r.get("samples") or {}
        v = repeats[metric] if metric in repeats else r.get("metrics", {}).get(metric)
        for x in v if isinstance(v, list) else [v]:
            if isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x):
                vals.append(float(x))
    return np.asarray(vals, dtype=np.float64)


def _verdict(direction: int, lower_better: bool | None) -> str:
    if direction == 0:
        return "unchanged"
    if lower_better is None:
        return "changed"
    worse = direction > 0 if lower_better else direction < 0
    return "regressed" if worse else "improved"


def compare(
    a: Sequence[Mapping[str, Any]],
    b: Sequence[Mapping[str, Any]],
    *,
    alpha: float = 0.05,
    n_boot: int = 2000,
    random_state: int | None = 0,
) -> list[FigureComparison]:
    """Compare every figure present in both run sets.

    Parameters
    ----------
    a, b : sequence of record
        Baseline runs and candidate runs (from :meth:`BenchHistory.select`).
    alpha : float, default=0.05
        Significance level (one-sided per direction for Mann-Whitney U; the
        bootstrap interval is the central ``1 - alpha`` one).
    n_boot : int, default=2000
    random_state : int, optional

    Returns
    -------
    list of FigureComparison
        Sorted by benchmark and figure.
    """
    from scipy import stats

    check_number(alpha, "alpha", "compare", minimum=0, maximum=0.5, exclusive_minimum=True)
    check_number(n_boot, "n_boot", "compare", minimum=100, integer=True)
    rng = np.random.default_rng(random_state)
    keys_a = {(r["bench"], m) for r in a for m in r.get("metrics", {})}
    keys_b = {(r["bench"], m) for r in b for m in r.get("metrics", {})}
    out = []
    for bench, metric in sorted(keys_a & keys_b):
        xa, xb = _samples(a, bench, metric), _samples(b, bench, metric)
        if len(xa) == 0 or len(xb) == 0:
            continue
        ma, mb = float(np.median(xa)), float(np.median(xb))
        ratio = mb / ma if ma != 0 else (1.0 if mb == 0 else float("inf"))
        lb = lower_is_better(metric)
        p_value = ci_low = ci_high = None
        if len(xa) >= 3 and len(xb) >= 3:
            method = "mannwhitneyu"
            p_up = float(stats.mannwhitneyu(xb, xa, alternative="greater").pvalue)
            p_down = float(stats.mannwhitneyu(xb, xa, alternative="less").pvalue)
            direction = 1 if p_up <= alpha else (-1 if p_down <= alpha else 0)
            p_value = p_up if direction >= 0 and p_up <= p_down else p_down
        elif len(xa) >= 2 and len(xb) >= 2 and ma != 0:
            method = "bootstrap"
            ia = rng.integers(0, len(xa), size=(n_boot, len(xa)))
            ib = rng.integers(0, len(xb), size=(n_boot, len(xb)))
            ra = np.median(xa[ia], axis=1)
            rb = np.median(xb[ib], axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratios = rb / ra
            ratios = ratios[np.isfinite(ratios)]
            ci_low = float(np.quantile(ratios, alpha / 2))
            ci_high = float(np.quantile(ratios, 1 - alpha / 2))
            direction = 1 if ci_low > 1 else (-1 if ci_high < 1 else 0)
        else:
            out.append(
                FigureComparison(
                    bench, metric, len(xa), len(xb), ma, mb, ratio, "none", None, None, None, "insufficient"
                )
            )
            continue
        out.append(
            FigureComparison(
                bench,
                metric,
                len(xa),
                len(xb),
                ma,
                mb,
                ratio,
                method,
                p_value,
                ci_low,
                ci_high,
                _verdict(direction, lb),
            )
        )
    return out
