"""Where the dashboard reads metrics from: this process, a multiprocess directory, or ``/metrics`` URLs.

Each :class:`MetricSource` returns flat :class:`Point` values; the collector
keys them by source so counters of different processes are rated separately
and then added up.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import prometheus_client as prom

from scaleforge._validation import check_number
from scaleforge.errors import InvalidParameterError
from scaleforge.monitor import metrics

__all__ = [
    "MetricSource",
    "MultiprocessSource",
    "Point",
    "RegistrySource",
    "ScrapeSource",
    "flatten_families",
    "series_key",
]


@dataclass(frozen=True, slots=True)
class Point:
    """One sample of one series.

    Attributes
    ----------
    name : str
        Sample name as exposed (``..._total``, ``..._bucket``, ``..._sum``, ``..._count``).
    labels : tuple of (str, str)
        Sorted label pairs.
    value : float
    """

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

    @property
    def key(self) -> str:
        """The series key, ``name{a="x",b="y"}``."""
        return series_key(self.name, self.labels)

    def label(self, name: str, default: str = "") -> str:
        """Value of label ``name``."""
        for k, v in self.labels:
            if k == name:
                return v
        return default


def series_key(name: str, labels: Iterable[tuple[str, str]] = ()) -> str:
    """Return the canonical key ``name{a="x",b="y"}`` of a series (labels sorted)."""
    pairs = sorted(labels)
    if not pairs:
        return name
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in pairs) + "}"


def flatten_families(families: Iterable[Any]) -> list[Point]:
    """Turn prometheus_client metric families into points (``_created`` samples dropped)."""
    out = []
    for family in families:
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            out.append(
                Point(s.name, tuple(sorted((str(k), str(v)) for k, v in s.labels.items())), float(s.value))
            )
    return out


class MetricSource(abc.ABC):
    """A place metrics are read from.

    Attributes
    ----------
    name : str
        Identifies the source in the dashboard and in series keys.
    """

    name: str
    kind: str = "source"

    @abc.abstractmethod
    def read(self) -> list[Point]:
        """Return the current points; raise on failure (the collector records it)."""

    def close(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Release resources; no-op by default."""


class RegistrySource(MetricSource):
    """The metrics of this process (:data:`scaleforge.monitor.metrics.REGISTRY` by default).

    Parameters
    ----------
    registry : prometheus_client.CollectorRegistry, optional
    name : str, default="local"
    """

    kind = "registry"

    def __init__(self, registry: prom.CollectorRegistry | None = None, *, name: str = "local") -> None:
        self.registry = metrics.REGISTRY if registry is None else registry
        self.name = name

    def read(self) -> list[Point]:
        return flatten_families(self.registry.collect())


class MultiprocessSource(MetricSource):
    """Metrics written by worker processes to a multiprocess directory.

    Parameters
    ----------
    directory : path-like
        The directory given to :func:`scaleforge.monitor.metrics.enable_multiprocess`.
    name : str, optional
        Defaults to ``"dir:<directory>"``.
    """

    kind = "multiprocess"

    def __init__(self, directory: str | os.PathLike[str], *, name: str | None = None) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise InvalidParameterError(
                f"The 'directory' parameter of MultiprocessSource ({str(self.directory)!r}) is not a directory. "
                "Pass the directory your workers record to (Settings.monitor.multiprocess_dir)."
            )
        self.name = name or f"dir:{self.directory}"

    def read(self) -> list[Point]:
        empty = prom.CollectorRegistry(auto_describe=False)
        return flatten_families(metrics.collect_families(empty, multiprocess_dir=self.directory))


class ScrapeSource(MetricSource):
    """A ``/metrics`` endpoint of another process, read over HTTP.

    Parameters
    ----------
    url : str
        e.g. ``"http://127.0.0.1:8000/metrics"``.
    timeout_s : float, default=2.0
    name : str, optional
        Defaults to the URL.
    """

    kind = "scrape"

    def __init__(self, url: str, *, timeout_s: float = 2.0, name: str | None = None) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InvalidParameterError(
                f"The 'url' parameter of ScrapeSource must be an http(s) URL such as "
                f"'http://127.0.0.1:8000/metrics'. Got {url!r} instead."
            )
        check_number(timeout_s, "timeout_s", "ScrapeSource", minimum=0, exclusive_minimum=True)
        import httpx

        self.url = url
        self.name = name or url
        self._client = httpx.Client(timeout=timeout_s)

    def read(self) -> list[Point]:
        from prometheus_client.parser import text_string_to_metric_families

        response = self._client.get(self.url)
        response.raise_for_status()
        return flatten_families(text_string_to_metric_families(response.text))

    def close(self) -> None:
        self._client.close()
