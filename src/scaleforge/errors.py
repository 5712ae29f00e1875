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
    │   ├── RequestTimeoutError(TimeoutError)   a request missed its deadline (HTTP 504)
    │   ├── QueueFullError                      a model's queue is full (HTTP 503 + Retry-After)
    │   ├── ServerClosingError                  the server is draining (HTTP 503)
    │   ├── AuthenticationError                 no or a wrong bearer token (HTTP 401)
    │   └── ModelNotFoundError                  no such model or version (HTTP 404)
    └── JobError                                the job service failed
        ├── JobNotFoundError(KeyError)          no such job (or not yours)
        └── IdempotencyConflictError            an idempotency key reused for another request

    InvalidParameterError subclasses for bad requests and systems:
        MalformedBodyError (HTTP 400), UnsupportedMediaTypeError (415), NotAcceptableError (406),
        PayloadTooLargeError (413), SingularSystemError (a singular PDE system)

    ScaleforgeWarning(UserWarning)

Messages name the parameter, the value received and the fix, e.g. ``"The
'max_wait_s' parameter of DynamicBatcher must be a float >= 0. Got -1 instead."``
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BatchSizeMismatchError",
    "CacheError",
    "ComputeError",
    "ConfigError",
    "IdempotencyConflictError",
    "IntegrityError",
    "InvalidParameterError",
    "JobError",
    "JobNotFoundError",
    "MalformedBodyError",
    "MissingDependencyError",
    "ModelNotFoundError",
    "NotAcceptableError",
    "NotFittedError",
    "PayloadTooLargeError",
    "QueueFullError",
    "RequestTimeoutError",
    "ScaleforgeError",
    "ScaleforgeWarning",
    "SerializationError",
    "ServeError",
    "ServerClosingError",
    "SingularSystemError",
    "TaskError",
    "UnsupportedMediaTypeError",
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


class QueueFullError(ServeError):
    """The model's queue is full; retry after :attr:`retry_after_s` seconds.

    Parameters
    ----------
    message : str
    retry_after_s : float
        Estimated time for the queue to drain.
    """

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ServerClosingError(ServeError):
    """The batcher is shutting down and accepts no new requests."""


class AuthenticationError(ServeError):
    """A request had no bearer token or a wrong one (HTTP 401)."""


class ModelNotFoundError(ServeError):
    """No loaded model or version by that name (HTTP 404)."""


class MalformedBodyError(InvalidParameterError):
    """The request body cannot be parsed in its declared format (HTTP 400)."""


class UnsupportedMediaTypeError(InvalidParameterError):
    """The request's Content-Type is not a supported wire format (HTTP 415)."""


class NotAcceptableError(InvalidParameterError):
    """No supported format matches the request's Accept header (HTTP 406)."""


class PayloadTooLargeError(InvalidParameterError):
    """The request body exceeds ``max_body_bytes`` (HTTP 413)."""


class SingularSystemError(InvalidParameterError):
    """The system matrix is singular (e.g. a pure Neumann problem with no Dirichlet boundary)."""


class JobError(ScaleforgeError):
    """The job service or job store failed."""


class JobNotFoundError(JobError, KeyError):
    """No job with that id exists, or it belongs to another owner."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class IdempotencyConflictError(JobError):
    """An idempotency key was reused with a different request."""


class ScaleforgeWarning(UserWarning):
    """Base class of the warnings scaleforge emits."""
