"""The thin metrics API every layer records through.

Counters, gauges and histograms with labels, backed by ``prometheus_client``
in one registry per process. Getting a metric is idempotent: asking twice for
the same name returns the same object, so a module can call :func:`counter`
at import of a hot path once and keep the child::

    _HITS = counter("scaleforge_cache_hits_total", "Cache hits", ["tier"])
    _HITS_MEMORY = _HITS.labels(tier="memory")   # bind once, outside the hot path
    _HITS_MEMORY.inc()                           # ~0.2-0.5 us (benchmarks/bench_monitor.py)

Multiprocess mode: worker pools and multi-worker servers call
:func:`enable_multiprocess` with a shared directory (from the argument or
``Settings.monitor.multiprocess_dir``) *before* they record; every process then
writes its values to memory-mapped files there, and :func:`generate_latest`
with that directory adds them up the way Prometheus expects.

Switching recording off: inside ``scaleforge.config_context(metrics=False)``
every ``inc``, ``dec``, ``set`` and ``observe`` of a metric made here is a
no-op in that thread or task, including on children bound before the context
was entered. The check is one context-variable read per call (about 40 ns,
``counter_inc_ns`` in ``benchmarks/bench_monitor.py``); outside such a context
recording is unchanged. Other values of the ``metrics`` key record normally.

This module imports no other scaleforge layer.
"""

from __future__ import annotations

import glob
import itertools
import os
import re
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import prometheus_client as prom
from prometheus_client import mmap_dict as _mmap_dict
from prometheus_client import multiprocess as _multiprocess
from prometheus_client import values as _prom_values
from prometheus_client.metrics_core import Metric

from scaleforge import settings as _settings
from scaleforge.errors import InvalidParameterError

__all__ = [
    "CONTENT_TYPE_LATEST",
    "REGISTRY",
    "collect_families",
    "counter",
    "disable_multiprocess",
    "enable_multiprocess",
    "gauge",
    "generate_latest",
    "histogram",
    "mark_process_dead",
    "multiprocess_dir",
    "recording_enabled",
]

REGISTRY = prom.CollectorRegistry(auto_describe=True)
CONTENT_TYPE_LATEST: str = prom.CONTENT_TYPE_LATEST

_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_RESERVED_LABELS = frozenset({"le", "quantile", "pid"})
_lock = threading.Lock()
_metrics: dict[str, prom.metrics.MetricWrapperBase] = {}
_mp_state: dict[str, Any] = {"dir": None, "previous": None}

M = TypeVar("M", prom.Counter, prom.Gauge, prom.Histogram)

# Bound once: the hot paths below read the config_context variable directly (one C call).
_context_get = _settings._context.get


def recording_enabled() -> bool:
    """Return False inside ``config_context(metrics=False)``, True otherwise.

    Returns
    -------
    bool

    Examples
    --------
    >>> from scaleforge.settings import config_context
    >>> with config_context(metrics=False):
    ...     recording_enabled()
    False
    >>> recording_enabled()
    True
    """
    return _context_get().get("metrics") is not False


def _validate(name: str, labelnames: Sequence[str]) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidParameterError(
            f"Metric names must match [a-zA-Z_:][a-zA-Z0-9_:]*. Got {name!r} instead."
        )
    if isinstance(labelnames, str):
        raise InvalidParameterError(
            f"The 'labelnames' parameter of metric {name!r} must be a sequence of label names, "
            f"not a string. Got {labelnames!r}; write [{labelnames!r}] instead."
        )
    if len(set(labelnames)) != len(tuple(labelnames)):
        raise InvalidParameterError(
            f"The label names of metric {name!r} must be distinct. Got {tuple(labelnames)!r} instead."
        )
    for label in labelnames:
        if not isinstance(label, str) or not _LABEL_RE.match(label) or label.startswith("__"):
            raise InvalidParameterError(
                f"Label names of metric {name!r} must match [a-zA-Z_][a-zA-Z0-9_]* and not start with '__'. "
                f"Got {label!r} instead."
            )
        if label in _RESERVED_LABELS:
            raise InvalidParameterError(
                f"Label {label!r} of metric {name!r} is reserved by Prometheus "
                f"({', '.join(sorted(_RESERVED_LABELS))}); choose another label name."
            )


def _kind_name(cls: type) -> str:
    for base in (prom.Counter, prom.Gauge, prom.Histogram):
        if issubclass(cls, base):
            return base.__name__
    return cls.__name__


def _get_or_create(
    kind: type[M], name: str, documentation: str, labelnames: Sequence[str], **kw: object
) -> M:
    existing = _metrics.get(name)
    if existing is not None:
        if not isinstance(existing, kind) or tuple(existing._labelnames) != tuple(labelnames):
            raise InvalidParameterError(
                f"Metric {name!r} already exists as a {_kind_name(type(existing))} with labels "
                f"{tuple(existing._labelnames)}; asked for a {_kind_name(kind)} with labels {tuple(labelnames)}. "
                "Use another name or the same kind and labels."
            )
        return existing
    _validate(name, labelnames)
    with _lock:
        existing = _metrics.get(name)
        if existing is None:
            try:
                existing = kind(name, documentation, labelnames=tuple(labelnames), registry=REGISTRY, **kw)  # type: ignore[arg-type]
            except ValueError as exc:  # e.g. a name clashing with another metric's _total/_bucket series
                raise InvalidParameterError(
                    f"Cannot create metric {name!r}: {exc}. Use another name."
                ) from exc
            _metrics[name] = existing
    if not isinstance(existing, kind):  # pragma: no cover - a concurrent creation of another kind
        raise InvalidParameterError(
            f"Metric {name!r} was created concurrently as a {type(existing).__name__}."
        )
    return existing


class _TickValue:
    """Wraps a counter's in-process value and adds lock-free unit increments.

    ``itertools.count.__next__`` runs in C under the GIL, so ``tick()`` is an
    atomic +1 without a Python-level lock; other amounts go to the wrapped value.
    """

    _multiprocess = False

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._ticks = itertools.count()
        self.tick = self._ticks.__next__
        self._offset = 0

    def _count(self) -> int:
        return int(repr(self._ticks)[6:-1])  # "count(n)": read without advancing

    def inc(self, amount: float) -> None:
        self._inner.inc(amount)

    def set(self, value: float, timestamp: float | None = None) -> None:
        self._offset = self._count()  # Counter.reset(): forget the ticks so far
        self._inner.set(value)

    def get(self) -> float:
        return float(self._inner.get()) + (self._count() - self._offset)

    def set_exemplar(self, exemplar: object) -> None:
        self._inner.set_exemplar(exemplar)

    def get_exemplar(self) -> Any:
        return self._inner.get_exemplar()


class _FastCounter(prom.Counter):
    """A ``prometheus_client.Counter`` whose ``inc()`` by 1 skips the lock (in-process mode only).

    ``child.inc()`` is the hot path of every layer; this halves its cost
    (benchmarks/bench_monitor.py). Multiprocess children keep the mmap value.
    """

    _tick: Any = None

    def _metric_init(self) -> None:
        super()._metric_init()
        self._tick = None
        if not getattr(self._value, "_multiprocess", False):
            value = _TickValue(self._value)
            self._value = value
            self._tick = value.tick

    def inc(self, amount: float = 1, exemplar: dict[str, str] | None = None) -> None:
        ctx = _context_get()
        if ctx and ctx.get("metrics") is False:  # config_context(metrics=False)
            return
        tick = self._tick
        if tick is not None and amount == 1 and exemplar is None:
            tick()
            return
        super().inc(amount, exemplar)


class _Gauge(prom.Gauge):
    """A ``prometheus_client.Gauge`` that honours ``config_context(metrics=False)``."""

    def inc(self, amount: float = 1) -> None:
        ctx = _context_get()
        if ctx and ctx.get("metrics") is False:
            return
        super().inc(amount)

    def dec(self, amount: float = 1) -> None:
        ctx = _context_get()
        if ctx and ctx.get("metrics") is False:
            return
        super().dec(amount)

    def set(self, value: float) -> None:
        ctx = _context_get()
        if ctx and ctx.get("metrics") is False:
            return
        super().set(value)


class _Histogram(prom.Histogram):
    """A ``prometheus_client.Histogram`` that honours ``config_context(metrics=False)``."""

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        ctx = _context_get()
        if ctx and ctx.get("metrics") is False:
            return
        super().observe(amount, exemplar)


def counter(name: str, documentation: str, labelnames: Sequence[str] = ()) -> prom.Counter:
    """Return the counter ``name``, creating it on first use.

    Parameters
    ----------
    name : str
        Prometheus metric name, e.g. ``"scaleforge_cache_hits_total"``.
    documentation : str
        One-line help text.
    labelnames : sequence of str, default=()
        Label names; record with ``.labels(**values).inc()``.

    Returns
    -------
    prometheus_client.Counter

    Raises
    ------
    InvalidParameterError
        For an invalid name or label name, or a name already used by another kind.

    Examples
    --------
    >>> c = counter("scaleforge_doc_example_total", "An example", ["tier"])
    >>> c.labels(tier="memory").inc()
    """
    return _get_or_create(_FastCounter, name, documentation, labelnames)


def gauge(
    name: str,
    documentation: str,
    labelnames: Sequence[str] = (),
    *,
    multiprocess_mode: str = "livesum",
) -> prom.Gauge:
    """Return the gauge ``name``, creating it on first use (see :func:`counter`).

    Parameters
    ----------
    name, documentation, labelnames
        As for :func:`counter`.
    multiprocess_mode : str, default="livesum"
        How values of several processes combine in multiprocess mode
        (``"livesum"``, ``"max"``, ``"mostrecent"``, ``"all"`` ...); ignored otherwise.

    Returns
    -------
    prometheus_client.Gauge
    """
    if multiprocess_mode not in prom.Gauge._MULTIPROC_MODES:
        raise InvalidParameterError(
            f"The 'multiprocess_mode' parameter of gauge {name!r} must be one of "
            f"{', '.join(sorted(prom.Gauge._MULTIPROC_MODES))}. Got {multiprocess_mode!r} instead."
        )
    return _get_or_create(_Gauge, name, documentation, labelnames, multiprocess_mode=multiprocess_mode)


def histogram(
    name: str,
    documentation: str,
    labelnames: Sequence[str] = (),
    buckets: Sequence[float] | None = None,
) -> prom.Histogram:
    """Return the histogram ``name``, creating it on first use (see :func:`counter`).

    Parameters
    ----------
    name, documentation, labelnames
        As for :func:`counter`.
    buckets : sequence of float, optional
        Increasing upper bounds; Prometheus' defaults when omitted.

    Returns
    -------
    prometheus_client.Histogram
    """
    if buckets is None:
        return _get_or_create(_Histogram, name, documentation, labelnames)
    bounds = tuple(float(b) for b in buckets)
    if not bounds or any(b2 <= b1 for b1, b2 in itertools.pairwise(bounds)):
        raise InvalidParameterError(
            f"The 'buckets' parameter of histogram {name!r} must be a non-empty strictly increasing "
            f"sequence of upper bounds. Got {tuple(buckets)!r} instead."
        )
    return _get_or_create(_Histogram, name, documentation, labelnames, buckets=bounds)


# --------------------------------------------------------------------------- multiprocess mode


def _mmap_value_class(directory: Path) -> type:
    """A prometheus_client value class writing to ``directory`` (no environment variable)."""
    files: dict[str, Any] = {}
    mmaped_dict: Any = _mmap_dict.MmapedDict
    mmap_key: Any = _mmap_dict.mmap_key
    values: list[Any] = []
    pid = {"value": os.getpid()}
    lock = threading.Lock()

    class MmapedValue:
        _multiprocess = True

        def __init__(
            self,
            typ: str,
            metric_name: str,
            name: str,
            labelnames: Sequence[str],
            labelvalues: Sequence[str],
            help_text: str,
            multiprocess_mode: str = "",
            **kwargs: object,
        ) -> None:
            self._params = typ, metric_name, name, labelnames, labelvalues, help_text, multiprocess_mode
            with lock:
                self._check_for_pid_change()
                self._reset()
                values.append(self)

        def _reset(self) -> None:
            typ, metric_name, name, labelnames, labelvalues, help_text, mode = self._params
            prefix = f"{typ}_{mode}" if typ == "gauge" else typ
            if prefix not in files:
                files[prefix] = mmaped_dict(str(directory / f"{prefix}_{pid['value']}.db"))
            self._file = files[prefix]
            self._key = mmap_key(metric_name, name, labelnames, labelvalues, help_text)
            self._value, self._timestamp = self._file.read_value(self._key)

        def _check_for_pid_change(self) -> None:
            if pid["value"] != os.getpid():  # forked: start this process's own files
                pid["value"] = os.getpid()
                for f in files.values():
                    f.close()
                files.clear()
                for value in values:
                    value._reset()

        def inc(self, amount: float) -> None:
            with lock:
                self._check_for_pid_change()
                self._value += amount
                self._timestamp = 0.0
                self._file.write_value(self._key, self._value, self._timestamp)

        def set(self, value: float, timestamp: float | None = None) -> None:
            with lock:
                self._check_for_pid_change()
                self._value = value
                self._timestamp = timestamp or 0.0
                self._file.write_value(self._key, self._value, self._timestamp)

        def set_exemplar(self, exemplar: object) -> None:
            return None

        def get(self) -> float:
            with lock:
                self._check_for_pid_change()
                return float(self._value)

        def get_exemplar(self) -> None:
            return None

    return MmapedValue


def enable_multiprocess(directory: str | os.PathLike[str] | None = None) -> Path:
    """Record this process's metrics in a directory shared with other processes.

    Call it at process start (a worker pool's initializer, a server worker's
    startup): metrics and bound children made earlier through this module are
    switched in place, and what they recorded before is dropped. Worker
    processes forked afterwards inherit the mode; ``spawn`` workers call it
    themselves.

    Parameters
    ----------
    directory : path-like, optional
        Shared directory; defaults to ``Settings.monitor.multiprocess_dir``.

    Returns
    -------
    pathlib.Path
        The directory in use.

    Raises
    ------
    InvalidParameterError
        If no directory is given nor configured, or it cannot be created.
    """
    if directory is None:
        from scaleforge.settings import get_settings

        directory = get_settings().monitor.multiprocess_dir
    if directory is None:
        raise InvalidParameterError(
            "enable_multiprocess needs a 'directory': pass one or set Settings.monitor.multiprocess_dir "
            "(SCALEFORGE_MONITOR__MULTIPROCESS_DIR=/tmp/sf-metrics)."
        )
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidParameterError(
            f"The 'directory' parameter of enable_multiprocess ({str(path)!r}) cannot be created: {exc}. "
            "Choose a writable directory."
        ) from exc
    with _lock:
        if _mp_state["dir"] == path:
            return path
        if _mp_state["previous"] is None:
            _mp_state["previous"] = _prom_values.ValueClass
        _prom_values.ValueClass = _mmap_value_class(path)
        _mp_state["dir"] = path
        _reinit_values()
    return path


def _reinit_values() -> None:
    """Give every metric made through this module a value of the current class, in place.

    Callers keep references to metrics and bound children (``_X = counter(...).labels(...)``
    at import), so their value objects are swapped rather than the objects themselves.
    Values recorded before the switch are dropped.
    """
    for wrapper in list(_metrics.values()):
        metric: Any = wrapper  # prometheus_client's private hooks are untyped
        if metric._is_observable():
            metric._metric_init()
        else:
            with metric._lock:
                children = list(metric._metrics.values())
            for child in children:
                child._metric_init()


def disable_multiprocess() -> None:
    """Return to in-process values (metrics are switched in place, starting from zero)."""
    with _lock:
        if _mp_state["previous"] is None:
            return
        _prom_values.ValueClass = _mp_state["previous"]
        _mp_state["dir"] = None
        _mp_state["previous"] = None
        _reinit_values()


def multiprocess_dir() -> Path | None:
    """Return the multiprocess directory in use by this process, or ``None``.

    Returns
    -------
    pathlib.Path or None
    """
    dir_: Path | None = _mp_state["dir"]
    return dir_


def mark_process_dead(pid: int, directory: str | os.PathLike[str] | None = None) -> None:
    """Forget the live gauges of a dead worker process (call from the pool's parent).

    Parameters
    ----------
    pid : int
        Process id of the worker that exited.
    directory : path-like, optional
        The multiprocess directory; defaults to this process's.
    """
    path = Path(directory) if directory is not None else multiprocess_dir()
    if path is None:
        return
    for mode in prom.Gauge._MULTIPROC_MODES:
        if mode.startswith("live"):
            for f in glob.glob(str(path / f"gauge_{mode}_{pid}.db")):
                Path(f).unlink(missing_ok=True)


class _Families:
    """A collector yielding a fixed list of metric families."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


def collect_families(
    registry: prom.CollectorRegistry | None = None,
    *,
    multiprocess_dir: str | os.PathLike[str] | None = None,
) -> list[Metric]:
    """Collect metric families from a registry and, optionally, a multiprocess directory.

    When this process records into that same directory (:func:`enable_multiprocess`),
    the directory already holds its values and its in-process families are
    skipped. Otherwise this process's samples are added to the directory's:
    counter and histogram samples with the same labels are summed (a parent
    that ran ``map`` and its workers count the same series); a gauge series
    present in both combines by the gauge's ``multiprocess_mode`` (sum, max or
    min; for gauges not made by :func:`gauge`, and ``mostrecent``, the
    directory's value is kept). Forked workers hold a zero for every metric
    their parent had made, so these rules keep the parent's value.

    Parameters
    ----------
    registry : prometheus_client.CollectorRegistry, optional
        Defaults to :data:`REGISTRY`.
    multiprocess_dir : path-like, optional
        A directory written by processes that called :func:`enable_multiprocess`.

    Returns
    -------
    list of prometheus_client.Metric
    """
    reg = REGISTRY if registry is None else registry
    families: dict[str, Metric] = {}
    if multiprocess_dir is not None:
        path = Path(multiprocess_dir)
        if not path.is_dir():
            raise InvalidParameterError(
                f"The 'multiprocess_dir' parameter ({str(path)!r}) is not a directory. "
                "Pass the directory given to enable_multiprocess."
            )
        files = glob.glob(str(path / "*.db"))
        merge: Any = _multiprocess.MultiProcessCollector.merge
        for family in merge(files, accumulate=True):
            families[family.name] = family
        own = _mp_state["dir"]
        if own is not None and own.resolve() == path.resolve():
            for family in reg.collect():
                families.setdefault(family.name, family)
            return list(families.values())
    for family in reg.collect():
        other = families.get(family.name)
        if other is None:
            families[family.name] = family
        else:
            families[family.name] = _add_families(other, family)
    return list(families.values())


_ADDITIVE = frozenset({"counter", "histogram"})
_ADDITIVE_SUFFIXES = ("_total", "_count", "_sum", "_bucket")


def _add_families(shared: Metric, local: Metric) -> Metric:
    """``shared`` (from a directory) plus ``local`` (this process), sample by sample."""
    out = Metric(shared.name, shared.documentation, shared.type, shared.unit)
    index: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
    for sample in shared.samples:
        index[(sample.name, tuple(sorted(sample.labels.items())))] = len(out.samples)
        out.samples.append(sample)
    for sample in local.samples:
        key = (sample.name, tuple(sorted(sample.labels.items())))
        pos = index.get(key)
        if pos is None:
            index[key] = len(out.samples)
            out.samples.append(sample)
        elif shared.type in _ADDITIVE and sample.name.endswith(_ADDITIVE_SUFFIXES):
            out.samples[pos] = out.samples[pos]._replace(value=out.samples[pos].value + sample.value)
        elif shared.type == "gauge":
            combine = _GAUGE_COMBINE.get(_gauge_mode(shared.name))
            if combine is not None:
                value = combine(out.samples[pos].value, sample.value)
                out.samples[pos] = out.samples[pos]._replace(value=value)
    return out


def _add(a: float, b: float) -> float:
    return a + b


_GAUGE_COMBINE: dict[str, Any] = {
    "sum": _add,
    "livesum": _add,
    "max": max,
    "livemax": max,
    "min": min,
    "livemin": min,
}


def _gauge_mode(name: str) -> str:
    metric: Any = _metrics.get(name)
    return str(getattr(metric, "_multiprocess_mode", "")) if isinstance(metric, prom.Gauge) else ""


def generate_latest(
    registry: prom.CollectorRegistry | None = None,
    *,
    multiprocess_dir: str | os.PathLike[str] | None = None,
) -> bytes:
    """Render metrics in the Prometheus text format, merging a multiprocess directory.

    Parameters
    ----------
    registry : prometheus_client.CollectorRegistry, optional
        Defaults to :data:`REGISTRY`.
    multiprocess_dir : path-like, optional
        Also add up the values written there by other processes.

    Returns
    -------
    bytes
        The exposition, served with :data:`CONTENT_TYPE_LATEST`.
    """
    if multiprocess_dir is None:
        return bytes(prom.generate_latest(REGISTRY if registry is None else registry))
    merged = prom.CollectorRegistry(auto_describe=False)
    merged.register(_Families(collect_families(registry, multiprocess_dir=multiprocess_dir)))
    return bytes(prom.generate_latest(merged))
