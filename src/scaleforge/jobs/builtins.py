"""The job layer's own workload (``scaleforge.sleep``) and JSON conversion of results.

The scientific workloads register themselves from ``scaleforge.workloads.jobs``
through the ``scaleforge.workloads`` entry-point group: the job layer never
imports a workload.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import pydantic

from scaleforge.jobs.registry import Workload

__all__ = ["BUILTINS", "sleep", "to_jsonable"]


class _Params(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")


class SleepParams(_Params):
    """Parameters of ``scaleforge.sleep``."""

    seconds: float = pydantic.Field(0.0, ge=0.0, le=3600.0, description="How long to sleep.")


def to_jsonable(value: Any) -> Any:
    """Convert numpy values, dataclasses and paths into JSON-ready values.

    Parameters
    ----------
    value : object

    Returns
    -------
    object
    """
    import numpy as np

    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def sleep(seconds: float = 0.0) -> dict[str, float]:
    """Sleep, then report how long (a smoke test for a deployment)."""
    t0 = time.monotonic()
    time.sleep(seconds)
    return {"slept_s": time.monotonic() - t0}


def _builtin(name: str, fn: Any, schema: type[pydantic.BaseModel]) -> Workload:
    doc = (fn.__doc__ or "").strip().splitlines()
    return Workload(
        name=name,
        target=f"{__name__}:{fn.__name__}",
        schema=schema,
        description=doc[0] if doc else "",
        builtin=True,
    )


BUILTINS: tuple[Workload, ...] = (_builtin("scaleforge.sleep", sleep, SleepParams),)
