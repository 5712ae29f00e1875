"""Exceptions and warnings raised by scaleforge.

Every exception raised by a public scaleforge call is a :class:`ScaleforgeError`.
Subclasses also inherit the builtin exception that callers already catch, so
``except ValueError`` keeps working around a call that validates its input.

The tree::

    ScaleforgeError
    ├── ConfigError(ValueError)                 bad settings, profile or config file
    ├── InvalidParameterError(ValueError, TypeError)
    │                                           a public call got an argument it cannot use
    ├── NotFittedError(ValueError, AttributeError)
    │                                           an estimator or model used before ``fit``
    ├── MissingDependencyError(ImportError)     an optional extra is not installed
    ├── CacheError                              a cache tier failed
    │   ├── SerializationError                  a value cannot be encoded or decoded
    │   └── IntegrityError                      an entry failed its MAC or checksum
    ├── ComputeError                            a parallel map or executor failed
    │   ├── TaskError                           a task raised after its retries
    │   └── WorkerLostError                     a worker process died
    ├── ServeError                              the model server failed
    │   ├── BatchSizeMismatchError              predict returned the wrong number of items
    │   └── RequestTimeoutError(TimeoutError)   a request missed its deadline
    └── JobError                                the job service failed
        └── JobNotFoundError(KeyError)          no such job (or not yours)

    ScaleforgeWarning(UserWarning)

Messages name the parameter, the value received and the fix, e.g. ``"The
'max_wait_s' parameter of DynamicBatcher must be a float >= 0. Got -1 instead."``
"""

from __future__ import annotations

__all__ = [
    "BatchSizeMismatchError",
    "CacheError",
    "ComputeError",
    "ConfigError",
    "IntegrityError",
    "InvalidParameterError",
    "JobError",
    "JobNotFoundError",
    "MissingDependencyError",
    "NotFittedError",
    "RequestTimeoutError",
    "ScaleforgeError",
    "ScaleforgeWarning",
    "SerializationError",
    "ServeError",
    "TaskError",
    "WorkerLostError",
]


class ScaleforgeError(Exception):
    """Base class of every exception scaleforge raises."""


class ConfigError(ScaleforgeError, ValueError):
    """Settings, a profile or a configuration file are invalid."""


class InvalidParameterError(ScaleforgeError, ValueError, TypeError):
    """A public call received an argument of the wrong type or value."""


class NotFittedError(ScaleforgeError, ValueError, AttributeError):
    """An estimator or model was used before it was fitted or trained."""


class MissingDependencyError(ScaleforgeError, ImportError):
    """An optional dependency is not installed.

    The message names the extra to install, e.g. ``pip install 'scaleforge[ray]'``.
    """


class CacheError(ScaleforgeError):
    """A cache tier failed. Public cache calls turn this into a counted miss."""


class SerializationError(CacheError):
    """A value cannot be encoded, or stored bytes cannot be decoded."""


class IntegrityError(CacheError):
    """A stored entry failed its MAC or checksum; it is never unpickled."""


class ComputeError(ScaleforgeError):
    """A parallel map or an executor failed."""


class TaskError(ComputeError):
    """A task raised after all its retries.

    Attributes
    ----------
    index : int or None
        Position of the failing item in the input.
    attempts : int
        How many times the task was tried.
    """

    def __init__(self, message: str, *, index: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.index = index
        self.attempts = attempts

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_task_error, (str(self), self.index, self.attempts))


def _rebuild_task_error(message: str, index: int | None, attempts: int) -> TaskError:
    return TaskError(message, index=index, attempts=attempts)


class WorkerLostError(ComputeError):
    """A worker process died (killed, out of memory) while running a task."""


class ServeError(ScaleforgeError):
    """The model server failed to load a model or answer a request."""


class BatchSizeMismatchError(ServeError):
    """A model's ``predict`` returned a list whose length differs from its batch."""


class RequestTimeoutError(ServeError, TimeoutError):
    """A request was not answered before its deadline."""


class JobError(ScaleforgeError):
    """The job service or job store failed."""


class JobNotFoundError(JobError, KeyError):
    """No job with that id exists, or it belongs to another owner."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ScaleforgeWarning(UserWarning):
    """Base class of the warnings scaleforge emits."""
