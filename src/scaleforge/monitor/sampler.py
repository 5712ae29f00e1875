"""Background sampling of the process tree (psutil) and GPUs (NVML, when present).

:class:`SystemSampler` runs a daemon thread that, every ``interval_s``,
measures CPU, memory, disk and network of this process and its children,
the machine's CPU and memory, and each NVIDIA GPU's utilisation and memory
through ``pynvml`` (``nvidia-ml-py``) when a driver is there. Each sample
updates Prometheus gauges and is handed to the optional ``on_sample`` callback
(the dashboard appends it to its time-series store).

A crash inside the sampling loop is caught, logged, counted in
``restarts`` (and ``scaleforge_sampler_restarts_total``) and the loop restarts
after a short back-off: the sampler never kills the host process.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from scaleforge._validation import check_number
from scaleforge.errors import InvalidParameterError
from scaleforge.monitor import metrics

__all__ = ["GpuProbe", "SystemSampler", "sample_system"]

logger = logging.getLogger(__name__)

Sample = dict[str, float]


class GpuProbe:
    """NVML access that degrades to "no GPU" when the library or driver is missing.

    Attributes
    ----------
    available : bool
        Whether NVML initialised and found at least one device.
    reason : str
        Why GPUs are unavailable (empty when available).
    """

    def __init__(self) -> None:
        self.available = False
        self.reason = ""
        self._nvml: Any = None
        self._handles: list[Any] = []
        try:
            import pynvml
        except ImportError:
            self.reason = "nvidia-ml-py is not installed"
            return
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception as exc:  # NVMLError_LibraryNotFound / DriverNotLoaded on CPU-only machines
            self.reason = f"NVML unavailable: {exc}"
            return
        self._nvml = pynvml
        self.available = bool(self._handles)
        if not self.available:
            self.reason = "NVML found no GPU"

    @property
    def count(self) -> int:
        """Number of GPUs visible."""
        return len(self._handles)

    def read(self) -> list[dict[str, float]]:
        """Utilisation (percent) and memory (bytes) of each GPU; empty without GPUs."""
        if not self.available:
            return []
        out = []
        for handle in self._handles:
            util = self._nvml.nvmlDeviceGetUtilizationRates(handle)
            mem = self._nvml.nvmlDeviceGetMemoryInfo(handle)
            out.append(
                {
                    "utilization_percent": float(util.gpu),
                    "memory_used_bytes": float(mem.used),
                    "memory_total_bytes": float(mem.total),
                }
            )
        return out

    def close(self) -> None:
        """Shut NVML down."""
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                logger.debug("nvmlShutdown failed", exc_info=True)
            self._nvml = None
            self.available = False


class _TreeReader:
    """Keeps psutil.Process objects between samples so cpu_percent has a reference point."""

    # Listing children scans every /proc/<pid>/stat (~2 ms with 130 processes, most of a sample's
    # cost in benchmarks/bench_monitor.py), so the tree is rescanned at most this often.
    TREE_REFRESH_S = 5.0

    def __init__(self, pid: int) -> None:
        import psutil

        self._psutil = psutil
        self._root = psutil.Process(pid)
        self._procs: dict[int, Any] = {}
        self._children: list[Any] = []
        self._scanned = -float("inf")
        psutil.cpu_percent(None)

    def read(self) -> Sample:
        psutil = self._psutil
        now = time.monotonic()
        if now - self._scanned >= self.TREE_REFRESH_S:
            self._scanned = now
            try:
                self._children = self._root.children(recursive=True)
            except psutil.Error:
                self._children = []
        procs = [self._root, *self._children]
        alive = {}
        cpu = rss = read_b = write_b = threads = 0.0
        for p in procs:
            proc = self._procs.get(p.pid, p)
            try:
                with proc.oneshot():
                    first = p.pid not in self._procs
                    c = proc.cpu_percent(None)
                    cpu += 0.0 if first else c
                    rss += proc.memory_info().rss
                    threads += proc.num_threads()
                    try:
                        io = proc.io_counters()
                        read_b += io.read_bytes
                        write_b += io.write_bytes
                    except (psutil.AccessDenied, AttributeError, NotImplementedError):
                        pass
            except psutil.Error:  # the child exited since the tree was listed
                self._scanned = -float("inf")
                continue
            alive[p.pid] = proc
        self._procs = alive
        vm = psutil.virtual_memory()
        sample: Sample = {
            "process_cpu_percent": cpu,
            "process_memory_bytes": rss,
            "process_threads": threads,
            "process_children": float(len(alive) - 1 if alive else 0),
            "process_disk_read_bytes": read_b,
            "process_disk_write_bytes": write_b,
            "cpu_percent": float(psutil.cpu_percent(None)),
            "memory_percent": float(vm.percent),
            "memory_used_bytes": float(vm.total - vm.available),
            "memory_total_bytes": float(vm.total),
        }
        try:
            net = psutil.net_io_counters()
            sample["net_sent_bytes"] = float(net.bytes_sent)
            sample["net_recv_bytes"] = float(net.bytes_recv)
        except (psutil.Error, OSError, AttributeError):
            pass
        return sample


def sample_system(pid: int | None = None) -> Sample:
    """Take one sample of a process tree and the machine, without a thread.

    CPU percentages of a single call are measured since the previous call of
    ``psutil.cpu_percent`` and may be 0.0; use :class:`SystemSampler` for rates.

    Parameters
    ----------
    pid : int, optional
        Root of the process tree; defaults to this process.

    Returns
    -------
    dict of str to float
    """
    return _TreeReader(os.getpid() if pid is None else pid).read()


class SystemSampler:
    """Sample the process tree, machine and GPUs on a background thread.

    Parameters
    ----------
    interval_s : float, optional
        Seconds between samples; defaults to ``Settings.monitor.sample_interval_s`` (1.0).
    pid : int, optional
        Root of the process tree; defaults to this process.
    on_sample : callable, optional
        ``on_sample(sample)`` with a ``dict[str, float]`` after each sample
        (``gpu<i>_utilization_percent`` and ``gpu<i>_memory_used_bytes`` keys when GPUs exist).
    gpu : bool, default=True
        Probe NVML for GPUs.
    max_backoff_s : float, default=30.0
        Longest wait before restarting a crashed loop.

    Attributes
    ----------
    samples : int
        Samples taken.
    restarts : int
        Times the loop crashed and was restarted.
    cpu_time_s : float
        CPU time spent sampling, from ``time.thread_time`` (the sampler's own overhead).
    last : dict
        The latest sample.

    Examples
    --------
    >>> with SystemSampler(interval_s=0.05) as s:  # doctest: +SKIP
    ...     time.sleep(0.2)
    >>> s.samples > 0  # doctest: +SKIP
    True
    """

    def __init__(
        self,
        interval_s: float | None = None,
        *,
        pid: int | None = None,
        on_sample: Callable[[Sample], None] | None = None,
        gpu: bool = True,
        max_backoff_s: float = 30.0,
    ) -> None:
        if interval_s is None:
            from scaleforge.settings import get_settings

            interval_s = get_settings().monitor.sample_interval_s
        check_number(interval_s, "interval_s", "SystemSampler", minimum=0, exclusive_minimum=True)
        check_number(pid, "pid", "SystemSampler", minimum=1, integer=True, allow_none=True)
        check_number(max_backoff_s, "max_backoff_s", "SystemSampler", minimum=0)
        if on_sample is not None and not callable(on_sample):
            raise InvalidParameterError(
                f"The 'on_sample' parameter of SystemSampler must be callable or None. Got {on_sample!r} instead."
            )
        self.interval_s = float(interval_s)
        self.pid = os.getpid() if pid is None else pid
        self.on_sample = on_sample
        self.max_backoff_s = float(max_backoff_s)
        self.samples = 0
        self.restarts = 0
        self.cpu_time_s = 0.0
        self.last: Sample = {}
        self.gpu = GpuProbe() if gpu else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reader: _TreeReader | None = None
        self._restarts_metric = metrics.counter(
            "scaleforge_sampler_restarts_total", "Times the system sampler loop crashed and restarted"
        )
        g = metrics.gauge
        self._gauges = {
            "process_cpu_percent": g(
                "scaleforge_process_cpu_percent", "CPU of the process tree, percent of one core"
            ),
            "process_memory_bytes": g(
                "scaleforge_process_memory_bytes", "Resident memory of the process tree"
            ),
            "cpu_percent": g(
                "scaleforge_system_cpu_percent", "CPU use of the machine, percent", multiprocess_mode="max"
            ),
            "memory_percent": g(
                "scaleforge_system_memory_percent",
                "Memory use of the machine, percent",
                multiprocess_mode="max",
            ),
        }
        self._gpu_util = g(
            "scaleforge_gpu_utilization_percent", "GPU utilisation, percent", ["gpu"], multiprocess_mode="max"
        )
        self._gpu_mem = g(
            "scaleforge_gpu_memory_used_bytes", "GPU memory used", ["gpu"], multiprocess_mode="max"
        )

    # -------------------------------------------------------------------- one sample
    def sample_once(self) -> Sample:
        """Take one sample now, update the gauges and call ``on_sample``.

        Returns
        -------
        dict of str to float
        """
        start = time.thread_time()
        if self._reader is None:
            self._reader = _TreeReader(self.pid)
        sample = self._reader.read()
        if self.gpu is not None:
            for i, gpu in enumerate(self.gpu.read()):
                sample[f"gpu{i}_utilization_percent"] = gpu["utilization_percent"]
                sample[f"gpu{i}_memory_used_bytes"] = gpu["memory_used_bytes"]
                sample[f"gpu{i}_memory_total_bytes"] = gpu["memory_total_bytes"]
                self._gpu_util.labels(gpu=str(i)).set(gpu["utilization_percent"])
                self._gpu_mem.labels(gpu=str(i)).set(gpu["memory_used_bytes"])
        for key, gauge in self._gauges.items():
            if key in sample:
                gauge.set(sample[key])
        self.samples += 1
        self.last = sample
        if self.on_sample is not None:
            self.on_sample(sample)
        self.cpu_time_s += time.thread_time() - start
        return sample

    # -------------------------------------------------------------------- thread
    def _loop(self) -> None:
        while not self._stop.is_set():
            tick = time.monotonic()
            self.sample_once()
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - tick)))

    def _supervise(self) -> None:
        backoff = min(self.interval_s, self.max_backoff_s)
        while not self._stop.is_set():
            try:
                self._loop()
            except Exception:
                # Never let a sampling bug reach the host: count it, start over with a fresh reader.
                self.restarts += 1
                self._restarts_metric.inc()
                self._reader = None
                logger.exception(
                    "system sampler crashed (restart %d); restarting in %.2f s", self.restarts, backoff
                )
                self._stop.wait(backoff)
                backoff = min(max(backoff * 2, 0.01), self.max_backoff_s)
            else:
                return

    @property
    def running(self) -> bool:
        """Whether the sampling thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> SystemSampler:
        """Start the background thread (no-op when already running).

        Returns
        -------
        SystemSampler
            ``self``.
        """
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._supervise, name="scaleforge-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread and wait for it (bounded by ``timeout_s``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                logger.warning("system sampler did not stop within %.1f s", timeout_s)
            self._thread = None

    def close(self) -> None:
        """Stop the thread and release NVML."""
        self.stop()
        if self.gpu is not None:
            self.gpu.close()

    def __enter__(self) -> SystemSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
