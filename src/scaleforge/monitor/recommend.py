"""Rule-based, evidence-citing hints drawn from the metrics.

Each rule reads the figures of a dashboard snapshot (see
:class:`scaleforge.monitor.collector.MetricsCollector`) and returns at most one
:class:`Recommendation` whose ``evidence`` holds the numbers it was drawn
from, so a user can check the claim. Rules stay silent without enough data.

Metrics the rules read (recorded by the other layers through
:mod:`scaleforge.monitor.metrics`):

- ``scaleforge_cache_hits_total{tier}``, ``scaleforge_cache_misses_total{tier}``,
  and ``scaleforge_cache_miss_argument_total{function,argument}`` (a miss whose
  key differs from a stored key only in that argument);
- ``scaleforge_task_duration_seconds{executor}`` (histogram);
- ``scaleforge_batch_size`` (histogram) and ``scaleforge_max_batch_size`` (gauge,
  else ``Settings.serve.max_batch_size``);
- the sampler's memory figures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "CACHE_MISS_ARGUMENT_METRIC",
    "RULES",
    "Recommendation",
    "recommend",
]

CACHE_MISS_ARGUMENT_METRIC = "scaleforge_cache_miss_argument_total"


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One hint.

    Attributes
    ----------
    rule : str
        Identifier of the rule that produced it.
    severity : {"info", "warning"}
    title : str
        One line.
    detail : str
        What to do, with the code or setting to change.
    evidence : dict
        The figures the hint is drawn from.
    """

    rule: str
    severity: str
    title: str
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


def _num(figures: Mapping[str, Any], key: str) -> float | None:
    value = figures.get(key)
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _rule_cache_hit_rate(snapshot: Mapping[str, Any]) -> Recommendation | None:
    figures = snapshot.get("figures", {})
    lookups = _num(figures, "cache_lookups_total") or 0.0
    hit_rate = _num(figures, "cache_hit_rate")
    if lookups < 50 or hit_rate is None or hit_rate >= 0.3:
        return None
    misses = lookups * (1.0 - hit_rate)
    by_arg: list[Mapping[str, Any]] = list(snapshot.get("cache_miss_arguments", []))
    evidence: dict[str, Any] = {"hit_rate": round(hit_rate, 4), "lookups": int(lookups)}
    if by_arg:
        top = max(by_arg, key=lambda r: float(r.get("count", 0)))
        count = float(top.get("count", 0))
        if misses > 0 and count >= 0.5 * misses:
            fn, arg = top.get("function", "?"), top.get("argument", "?")
            evidence.update(
                {"function": fn, "argument": arg, "misses_differing_only_in_argument": int(count)}
            )
            return Recommendation(
                rule="cache_ignored_argument",
                severity="warning",
                title=f"Cache hit rate {hit_rate:.0%}: keys of {fn} differ only in {arg!r}",
                detail=(
                    f"{int(count)} of {int(misses)} misses of {fn} had a stored entry that differed only in the "
                    f"argument {arg!r}. If it does not change the result, ignore it: "
                    f"@sf.cached(ignore=[{arg!r}])."
                ),
                evidence=evidence,
            )
    return Recommendation(
        rule="cache_low_hit_rate",
        severity="info",
        title=f"Cache hit rate is low: {hit_rate:.0%} over {int(lookups)} lookups",
        detail=(
            "Most calls compute. Use fn.explain(*args) on a repeated call to see which argument changes the "
            "key; ignore arguments that do not affect the result (@sf.cached(ignore=[...])), or raise "
            "cache.memory.max_bytes if entries are being evicted."
        ),
        evidence=evidence,
    )


def _rule_tasks_too_small(snapshot: Mapping[str, Any]) -> Recommendation | None:
    figures = snapshot.get("figures", {})
    mean_s = _num(figures, "task_duration_mean_s")
    count = _num(figures, "task_duration_count") or 0.0
    if mean_s is None or count < 100 or mean_s >= 0.005:
        return None
    executor = str(figures.get("executor") or "processes")
    if executor in ("threads", "serial"):
        return None
    return Recommendation(
        rule="tasks_too_small",
        severity="warning",
        title=f"Tasks are too small for the {executor} backend: {mean_s * 1e3:.2f} ms each",
        detail=(
            f"Each of {int(count)} tasks ran for {mean_s * 1e3:.2f} ms on average, about the cost of sending it "
            "to a worker. Group items: sf.map(fn, items, chunksize=64), or process a batch per call; "
            "or use executor='threads' for I/O-bound work."
        ),
        evidence={"task_duration_mean_s": mean_s, "tasks": int(count), "executor": executor},
    )


def _rule_batches_not_filling(snapshot: Mapping[str, Any]) -> Recommendation | None:
    figures = snapshot.get("figures", {})
    batches = _num(figures, "batches_total") or 0.0
    p95 = _num(figures, "batch_size_p95")
    mean = _num(figures, "batch_size_mean")
    limit = _num(figures, "max_batch_size")
    if limit is None:
        from scaleforge.settings import get_settings

        limit = float(get_settings().serve.max_batch_size)
    if batches < 20 or p95 is None or limit <= 1 or p95 >= 0.5 * limit:
        return None
    return Recommendation(
        rule="batches_not_filling",
        severity="info",
        title=f"Batches never fill: p95 size {p95:.3g} of max {limit:.0f}",
        detail=(
            f"Over {int(batches)} batches the mean size was {mean if mean is not None else float('nan'):.3g} and "
            f"the 95th percentile {p95:.3g}, well below max_batch_size={limit:.0f}. Requests arrive too slowly to "
            "fill a batch before max_wait_s: lower max_batch_size to what arrives (saves padding and memory) "
            "or raise max_wait_s if the latency budget allows larger batches."
        ),
        evidence={
            "batches": int(batches),
            "batch_size_mean": mean,
            "batch_size_p95": p95,
            "max_batch_size": limit,
        },
    )


def _rule_memory_near_limit(snapshot: Mapping[str, Any]) -> Recommendation | None:
    figures = snapshot.get("figures", {})
    pct = _num(figures, "memory_percent")
    if pct is None or pct < 85.0:
        return None
    evidence: dict[str, Any] = {"memory_percent": pct}
    for key in ("memory_used_bytes", "memory_total_bytes", "process_memory_bytes"):
        value = _num(figures, key)
        if value is not None:
            evidence[key] = value
    proc = evidence.get("process_memory_bytes")
    share = f" ({proc / 1e9:.2f} GB of it is this process tree)" if proc else ""
    return Recommendation(
        rule="memory_near_limit",
        severity="warning",
        title=f"Memory is near the limit: {pct:.0f}% used{share}",
        detail=(
            "Lower the in-memory cache (cache.memory.max_bytes, or the 'memory_optimized' profile), run fewer "
            "workers (compute.max_workers), or process arrays in chunks with sf.map_chunks."
        ),
        evidence=evidence,
    )


RULES: dict[str, Callable[[Mapping[str, Any]], Recommendation | None]] = {
    "batches_not_filling": _rule_batches_not_filling,
    "cache_hit_rate": _rule_cache_hit_rate,
    "memory_near_limit": _rule_memory_near_limit,
    "tasks_too_small": _rule_tasks_too_small,
}


def recommend(snapshot: Mapping[str, Any]) -> list[Recommendation]:
    """Run every rule on a snapshot and return the hints that apply.

    Parameters
    ----------
    snapshot : mapping
        ``{"figures": {...}, "cache_miss_arguments": [...]}`` as built by the collector;
        missing figures silence the rules that need them.

    Returns
    -------
    list of Recommendation
        Warnings first.

    Examples
    --------
    >>> [r.rule for r in recommend({"figures": {"memory_percent": 93.0}})]
    ['memory_near_limit']
    """
    out = [rec for rule in RULES.values() if (rec := rule(snapshot)) is not None]
    return sorted(out, key=lambda r: (r.severity != "warning", r.rule))
