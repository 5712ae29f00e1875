"""What runs inside a :class:`~scaleforge.compute.local.ProcessExecutor` worker.

Protocol over one duplex pipe per worker. Parent -> worker: a task message
``cloudpickle.dumps((task_id, fn, args, kwargs))``, or ``b""`` to exit.
Worker -> parent: ``pickle.dumps((task_id, ok, value))`` where ``value`` is the
result, or a :class:`RemoteException` when the task raised. Tasks on one
worker run in the order they were sent, so the parent knows which task a
worker holds when it dies.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any

import cloudpickle

from scaleforge.compute.shared import resolve_shared
from scaleforge.errors import ComputeError

__all__ = ["RemoteException", "decode_result", "worker_main"]

logger = logging.getLogger(__name__)


class RemoteException:
    """An exception raised in a worker, carried to the parent.

    The exception itself travels when it pickles; the formatted traceback
    always does, so an exception that cannot be pickled still reaches the
    caller as a :class:`~scaleforge.errors.ComputeError` with its type,
    message and traceback text.
    """

    __slots__ = ("exc_bytes", "message", "traceback_text", "type_name")

    def __init__(self, exc: BaseException) -> None:
        self.type_name = f"{type(exc).__module__}.{type(exc).__qualname__}"
        self.message = str(exc)
        self.traceback_text = "".join(traceback.format_exception(exc))
        try:
            payload = cloudpickle.dumps(exc)
            pickle.loads(payload)  # a pickle that cannot be loaded is as bad as none
            self.exc_bytes: bytes | None = payload
        except Exception:
            self.exc_bytes = None

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.exc_bytes, self.message, self.traceback_text, self.type_name)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.exc_bytes, self.message, self.traceback_text, self.type_name = state

    def to_exception(self) -> BaseException:
        """Rebuild the original exception, with the remote traceback as a note."""
        exc: BaseException | None = None
        if self.exc_bytes is not None:
            try:
                exc = pickle.loads(self.exc_bytes)
            except Exception:
                exc = None
        if exc is None:
            exc = ComputeError(
                f"{self.type_name}: {self.message} (the exception could not be pickled; "
                f"remote traceback follows)\n{self.traceback_text}"
            )
            exc.remote_type = self.type_name  # type: ignore[attr-defined]
        elif isinstance(exc, BaseException):
            exc.add_note(f"Remote traceback:\n{self.traceback_text}")
        return exc


def _dump_result(task_id: int, ok: bool, value: Any) -> bytes:
    try:
        return pickle.dumps((task_id, ok, value), protocol=5)
    except Exception:
        try:
            return bytes(cloudpickle.dumps((task_id, ok, value)))
        except Exception as exc:
            err = RemoteException(
                ComputeError(
                    f"The task's result of type {type(value).__name__} cannot be pickled ({exc}). "
                    "Return plain data (numbers, arrays, dicts) from functions run in processes."
                )
            )
            return pickle.dumps((task_id, False, err), protocol=5)


def decode_result(data: bytes) -> tuple[int, bool, Any]:
    """Unpickle one worker message into ``(task_id, ok, value)``."""
    task_id, ok, value = pickle.loads(data)
    return int(task_id), bool(ok), value


def limit_native_threads(n: int) -> None:
    """Cap OpenMP/BLAS (and torch's intra-op) thread pools of this process at ``n``.

    Called first thing in every process worker: it keeps workers from
    oversubscribing the cores, and it makes a forked worker safe after its parent
    used GNU OpenMP, whose thread pool does not survive ``fork`` (a child opening a
    parallel region with several threads hangs; with one thread it runs inline).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # threadpoolctl is a core dependency; stay usable without it
        logger.debug("threadpoolctl missing: native thread pools of worker %d left alone", os.getpid())
    else:
        threadpool_limits(limits=n)
    torch = sys.modules.get("torch")  # only if the parent had imported it: never import torch here
    if torch is not None:
        try:
            torch.set_num_threads(n)
        except Exception:  # a broken torch must not stop a worker
            logger.debug("torch.set_num_threads(%d) failed in worker %d", n, os.getpid(), exc_info=True)


def worker_main(
    conn: Connection,
    parent_conn: Connection | None = None,
    metrics_dir: str | None = None,
    native_threads: int | None = None,
) -> None:
    """Run tasks received on ``conn`` until it closes or sends ``b""``.

    ``native_threads`` caps the worker's OpenMP/BLAS thread pools (see
    :func:`limit_native_threads`).

    With ``metrics_dir`` (``Settings.monitor.multiprocess_dir`` of the parent),
    the worker records its metrics there (``enable_multiprocess``) so that a
    ``/metrics`` endpoint reading the directory adds up every worker's values.
    """
    if parent_conn is not None:  # forked children inherit the parent's end; close it
        parent_conn.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if native_threads is not None:
        limit_native_threads(native_threads)
    if metrics_dir is not None:
        try:
            from scaleforge.monitor.metrics import enable_multiprocess

            enable_multiprocess(metrics_dir)
        except Exception as exc:  # metrics must never stop a worker
            logger.warning("worker metrics stay per process: %s", exc)
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            break
        if not data:
            break
        task_id = -1
        try:
            task_id, fn, args, kwargs = pickle.loads(data)
            args, kwargs = resolve_shared(args, kwargs)
            out = _dump_result(task_id, True, fn(*args, **kwargs))
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)) and task_id < 0:
                break
            out = _dump_result(task_id, False, RemoteException(exc))
        try:
            conn.send_bytes(out)
        except (EOFError, OSError):
            break
    conn.close()
    os._exit(0)  # skip atexit handlers inherited through fork
