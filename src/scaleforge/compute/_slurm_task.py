"""The callable each SLURM job runs (imports submitit; loaded only by the slurm backend)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import submitit

__all__ = ["SlurmCall"]


class SlurmCall(submitit.helpers.Checkpointable):
    """Run ``fn(*args, **kwargs)``; on pre-emption or walltime, requeue it from the start.

    ``Checkpointable``'s default ``checkpoint`` resubmits the same call, which
    submitit does up to ``max_num_timeout`` times.
    """

    def __init__(self) -> None:
        super().__init__()

    def __call__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return fn(*args, **kwargs)
