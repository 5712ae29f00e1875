"""Automatic chunk sizes: group tiny tasks so per-task overhead stays small.

The first chunks are probes of one item. Each finished chunk reports how long
its items took *inside the worker*; the chunker keeps a moving average of the
time per item and sizes the next chunk so that it runs for
``overhead_s / max_overhead_fraction`` (with the default 2 % and the process
pool's ~0.4 ms per task: ~20 ms chunks). Sizes are *guided* (as OpenMP's
``schedule(guided)``): never more than ``remaining / (balance * workers)``
items, so chunks shrink as the input runs out and the workers finish within
one small chunk of each other, down to a floor of a quarter of the target
duration (a long tail of tiny chunks costs more than it saves). Ray and Dask
report a larger ``overhead_s``, so their chunks are larger: one remote task
per tiny item never happens.

The constants were tuned with ``benchmarks/bench_compute.py`` (``tiny``,
``ms1`` and ``cached`` cases) on 2 cores.
"""

from __future__ import annotations

import math

from scaleforge._validation import check_number

__all__ = ["AutoChunker", "FixedChunker"]


class FixedChunker:
    """Always the same chunk size (``chunksize=<int>``)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def next_size(self, remaining: int | None) -> int:
        """Return the size of the next chunk."""
        return self.size if remaining is None else max(1, min(self.size, remaining))

    def observe(self, n_items: int, compute_s: float) -> None:
        """Ignore measurements."""

    @property
    def calibrated(self) -> bool:
        """Always True: no probing needed."""
        return True


class AutoChunker:
    """Chunk sizes from measured task durations.

    Parameters
    ----------
    num_workers : int
        Workers sharing the items.
    overhead_s : float, default=2e-4
        Round-trip cost of one chunk on the executor.
    max_overhead_fraction : float, default=0.02
        Target overhead / compute ratio per chunk.
    balance : int, default=4
        Keep at least ``balance`` chunks per worker among the remaining items.
    max_size : int, default=100_000
        Upper bound of one chunk.
    """

    def __init__(
        self,
        num_workers: int,
        *,
        overhead_s: float = 2e-4,
        max_overhead_fraction: float = 0.02,
        balance: int = 4,
        max_size: int = 100_000,
    ) -> None:
        check_number(num_workers, "num_workers", "AutoChunker", minimum=1, integer=True)
        check_number(overhead_s, "overhead_s", "AutoChunker", minimum=0)
        check_number(
            max_overhead_fraction, "max_overhead_fraction", "AutoChunker", minimum=0, exclusive_minimum=True
        )
        self.num_workers = num_workers
        self.target_s = max(overhead_s / max_overhead_fraction, 1e-4)
        self.balance = balance
        self.max_size = max_size
        self.per_item_s: float | None = None
        self._observed = 0

    @property
    def calibrated(self) -> bool:
        """True once a chunk's timing has been observed."""
        return self.per_item_s is not None

    def observe(self, n_items: int, compute_s: float) -> None:
        """Record that ``n_items`` items took ``compute_s`` seconds in a worker."""
        if n_items <= 0:
            return
        per_item = max(compute_s, 0.0) / n_items
        if self.per_item_s is None:
            self.per_item_s = per_item
        else:  # weight by items so one-item probes do not dominate
            w = min(0.5, n_items / (n_items + self._observed))
            self.per_item_s = (1 - w) * self.per_item_s + w * per_item
        self._observed += n_items

    def next_size(self, remaining: int | None) -> int:
        """Return the size of the next chunk given the items left (None if unknown)."""
        if self.per_item_s is None:
            return 1
        per_item = max(self.per_item_s, 1e-9)
        size = math.ceil(self.target_s / per_item)  # overhead <= max_overhead_fraction
        if remaining is not None:
            # load balance: leave `balance` chunks per worker, but never shrink chunks below a
            # quarter of the overhead target (a long tail of tiny chunks costs more than it saves)
            floor = math.ceil(self.target_s / 4 / per_item)
            size = min(size, max(math.ceil(remaining / (self.num_workers * self.balance)), floor))
        return max(1, min(size, self.max_size))
