"""What can be submitted: built-in workloads and user-registered functions.

Every entry has a pydantic parameter schema. The service validates a
submission against it *before* queuing (so bad input is a 422 and nothing is
stored), ``GET /v1/workloads`` publishes it as JSON Schema, and the worker
validates again before running.

A function registered with :func:`register_function` is addressed by its
import path (``module:qualname``) when it has one, so worker processes on
other machines import it; service and workers must import the module that
registers it (``scaleforge jobs serve --import mypackage.jobs``).

Examples
--------
>>> from scaleforge.jobs.registry import register_function, get_workload
>>> def add(a: int, b: int = 1) -> int:
...     return a + b
>>> _ = register_function("example.add", add, replace=True)
>>> get_workload("example.add").validate({"a": 2})
{'a': 2, 'b': 1}
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import pydantic

from scaleforge.errors import InvalidParameterError

__all__ = [
    "Workload",
    "get_workload",
    "list_workloads",
    "register_function",
    "schema_from_signature",
    "unregister",
]

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_REGISTRY: dict[str, Workload] = {}
_BUILTINS_DONE = threading.Event()


@dataclasses.dataclass(frozen=True, slots=True)
class Workload:
    """One submittable entry.

    Attributes
    ----------
    name : str
    target : str or callable
        ``"module:qualname"`` (importable anywhere) or the function itself.
    schema : type of pydantic.BaseModel
        Validates and fills defaults of the parameters.
    description : str
    builtin : bool
    """

    name: str
    target: str | Callable[..., Any]
    schema: type[pydantic.BaseModel]
    description: str = ""
    builtin: bool = False

    def validate(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validate ``params`` against the schema and return them with defaults filled.

        Parameters
        ----------
        params : mapping or None

        Returns
        -------
        dict
            JSON-ready values.

        Raises
        ------
        InvalidParameterError
            Naming each bad parameter, what it must be and what was given.
        """
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise InvalidParameterError(
                f"The 'params' of workload {self.name!r} must be a JSON object. Got {type(params).__name__}."
            )
        try:
            model = self.schema.model_validate(dict(params))
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"'{'.'.join(map(str, e['loc'])) or 'params'}': {e['msg']} (got {e.get('input')!r})"
                for e in exc.errors(include_url=False)
            )
            raise InvalidParameterError(
                f"Invalid parameters for workload {self.name!r}: {problems}. "
                f"GET /v1/workloads shows its parameter schema."
            ) from exc
        return dict(model.model_dump(mode="json"))

    def load(self) -> Callable[..., Any]:
        """Return the function to call (importing ``target`` if it is a path).

        Returns
        -------
        callable
        """
        if callable(self.target):
            return self.target
        module, _, qualname = self.target.partition(":")
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        if not callable(obj):
            raise InvalidParameterError(f"Workload {self.name!r} target {self.target!r} is not callable.")
        return obj  # type: ignore[no-any-return]

    def describe(self) -> dict[str, Any]:
        """The entry as ``GET /v1/workloads`` lists it.

        Returns
        -------
        dict
            ``name``, ``description``, ``builtin`` and ``parameters`` (JSON Schema).
        """
        return {
            "name": self.name,
            "description": self.description,
            "builtin": self.builtin,
            "parameters": self.schema.model_json_schema(),
        }


def schema_from_signature(fn: Callable[..., Any], *, name: str | None = None) -> type[pydantic.BaseModel]:
    """Build a parameter schema from a function's annotated signature.

    Parameters without a default are required; ``*args``/``**kwargs`` are not
    allowed (a job's parameters are a JSON object of named values).

    Parameters
    ----------
    fn : callable
    name : str, optional
        Title of the schema.

    Returns
    -------
    type of pydantic.BaseModel

    Raises
    ------
    InvalidParameterError
        For variadic or unannotated parameters.
    """
    try:
        hints = inspect.get_annotations(fn, eval_str=True)
        sig = inspect.signature(fn)
    except (TypeError, ValueError, NameError) as exc:
        raise InvalidParameterError(
            f"Cannot read the signature of {fn!r} ({exc}); pass schema=YourModel to register_function."
        ) from exc
    fields: dict[str, Any] = {}
    for pname, p in sig.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise InvalidParameterError(
                f"register_function cannot derive a schema for {fn.__name__}(*{pname}): jobs take named "
                "parameters only. Pass schema=YourModel (a pydantic.BaseModel) instead."
            )
        if pname not in hints:
            raise InvalidParameterError(
                f"Parameter {pname!r} of {fn.__name__} has no type annotation; annotate it "
                f"(e.g. `{pname}: float`) or pass schema=YourModel to register_function."
            )
        default = ... if p.default is p.empty else p.default
        fields[pname] = (hints[pname], default)
    config = pydantic.ConfigDict(extra="forbid")
    title = str(name or getattr(fn, "__name__", "Params"))
    model: type[pydantic.BaseModel] = pydantic.create_model(title, __config__=config, **fields)
    return model


def _import_path(fn: Callable[..., Any]) -> str | None:
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return f"{module}:{qualname}" if obj is fn else None


def register_function(
    name: str,
    fn: Callable[..., Any],
    schema: type[pydantic.BaseModel] | None = None,
    *,
    description: str | None = None,
    replace: bool = False,
) -> Workload:
    """Make ``fn`` submittable as ``name``.

    Parameters
    ----------
    name : str
        Dotted name, e.g. ``"myteam.simulate"``.
    fn : callable
        Called as ``fn(**params)``; must return a JSON-serialisable value
        (numpy arrays are fine).
    schema : type of pydantic.BaseModel, optional
        The parameter schema; derived from ``fn``'s annotations when omitted.
    description : str, optional
        Defaults to the first line of ``fn``'s docstring.
    replace : bool, default=False
        Allow replacing an existing entry of that name.

    Returns
    -------
    Workload

    Raises
    ------
    InvalidParameterError
        For a bad name, a non-callable, a schema that is not a BaseModel, or a
        duplicate name without ``replace=True``.
    """
    if (
        not isinstance(name, str)
        or not 0 < len(name) <= 200
        or not name.replace(".", "").replace("_", "").replace("-", "").isalnum()
    ):
        raise InvalidParameterError(
            f"The 'name' parameter of register_function must be a dotted identifier like 'team.simulate' "
            f"(letters, digits, '.', '_', '-'; at most 200 characters). Got {name!r} instead."
        )
    if not callable(fn):
        raise InvalidParameterError(f"The 'fn' parameter of register_function must be callable. Got {fn!r}.")
    if schema is None:
        schema = schema_from_signature(fn, name=name)
    elif not (isinstance(schema, type) and issubclass(schema, pydantic.BaseModel)):
        raise InvalidParameterError(
            f"The 'schema' parameter of register_function must be a pydantic.BaseModel subclass. Got {schema!r}."
        )
    _load_builtins()
    doc = (inspect.getdoc(fn) or "").strip().splitlines()
    entry = Workload(
        name=name,
        target=_import_path(fn) or fn,
        schema=schema,
        description=description if description is not None else (doc[0] if doc else ""),
    )
    with _lock:
        existing = _REGISTRY.get(name)
        if (
            existing is not None
            and existing.target == entry.target
            and existing.schema.model_json_schema() == entry.schema.model_json_schema()
        ):
            return existing  # the same module imported again (a spawned worker): idempotent
        if existing is not None and not replace:
            raise InvalidParameterError(
                f"A workload named {name!r} is already registered. Choose another name or pass replace=True."
            )
        _REGISTRY[name] = entry
    return entry


def _register_builtin(entry: Workload) -> None:
    _REGISTRY[entry.name] = entry


def _load_builtins() -> None:
    if _BUILTINS_DONE.is_set():
        return
    with _lock:
        if _BUILTINS_DONE.is_set():
            return
        from importlib.metadata import entry_points

        from scaleforge.jobs.builtins import BUILTINS

        entries = list(BUILTINS)
        # Workload packages (ours in scaleforge.workloads.jobs, or a user's) offer theirs through
        # this entry-point group, so the job layer never imports a workload.
        for point in entry_points(group="scaleforge.workloads"):
            try:
                entries.extend(point.load())
            except Exception:  # a broken plugin must not take the service down
                logger.warning("cannot load workloads from entry point %r", point.value, exc_info=True)
        for entry in entries:
            _REGISTRY.setdefault(entry.name, entry)
        _BUILTINS_DONE.set()


def unregister(name: str) -> None:
    """Remove a user-registered workload (built-ins stay).

    Parameters
    ----------
    name : str

    Raises
    ------
    InvalidParameterError
        If ``name`` is a built-in or not registered.
    """
    _load_builtins()
    with _lock:
        entry = _REGISTRY.get(name)
        if entry is None or entry.builtin:
            raise InvalidParameterError(f"{name!r} is not a user-registered workload; nothing to remove.")
        del _REGISTRY[name]


def get_workload(name: str) -> Workload:
    """Return the registry entry ``name``.

    Parameters
    ----------
    name : str

    Returns
    -------
    Workload

    Raises
    ------
    InvalidParameterError
        For an unknown name; the message lists the known ones.
    """
    _load_builtins()
    entry = _REGISTRY.get(name) if isinstance(name, str) else None
    if entry is None:
        raise InvalidParameterError(
            f"Unknown workload {name!r}. Known workloads: {', '.join(sorted(_REGISTRY))}. "
            "Register your own with scaleforge.jobs.register_function(name, fn) in a module that the "
            "service and workers import (--import)."
        )
    return entry


def list_workloads() -> list[Workload]:
    """All registered workloads, sorted by name.

    Returns
    -------
    list of Workload
    """
    _load_builtins()
    with _lock:
        return [_REGISTRY[k] for k in sorted(_REGISTRY)]
