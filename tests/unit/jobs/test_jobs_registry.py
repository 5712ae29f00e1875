"""What can be submitted: schemas derived from signatures, built-ins, validation messages."""

from __future__ import annotations

from collections.abc import Iterator

import pydantic
import pytest

from scaleforge.errors import InvalidParameterError
from scaleforge.jobs.registry import (
    get_workload,
    list_workloads,
    register_function,
    schema_from_signature,
    unregister,
)


def scale(x: float, factor: int = 2) -> float:
    """Multiply x by factor."""
    return x * factor


@pytest.fixture
def registered() -> Iterator[str]:
    register_function("test.scale", scale, replace=True)
    yield "test.scale"
    unregister("test.scale")


def test_schema_from_signature_fills_defaults_and_forbids_extras(registered: str) -> None:
    entry = get_workload(registered)
    assert entry.validate({"x": 1.5}) == {"x": 1.5, "factor": 2}
    assert entry.target == f"{__name__}:scale"  # importable path, so workers elsewhere can run it
    assert entry.load()(**entry.validate({"x": 2})) == 4
    assert entry.description == "Multiply x by factor."
    with pytest.raises(InvalidParameterError, match=r"'x'.*(required|Field required)"):
        entry.validate({})
    with pytest.raises(InvalidParameterError, match=r"'extra'.*not permitted"):
        entry.validate({"x": 1, "extra": 1})
    with pytest.raises(InvalidParameterError, match=r"'factor'.*integer"):
        entry.validate({"x": 1, "factor": "lots"})


def test_registration_errors_say_how_to_fix() -> None:
    def untyped(x):  # type: ignore[no-untyped-def]
        return x

    def variadic(*xs: int) -> int:
        return 0

    with pytest.raises(InvalidParameterError, match="annotate it"):
        register_function("test.untyped", untyped)
    with pytest.raises(InvalidParameterError, match="schema=YourModel"):
        schema_from_signature(variadic)
    with pytest.raises(InvalidParameterError, match="dotted identifier"):
        register_function("bad name!", scale)
    with pytest.raises(InvalidParameterError, match="BaseModel"):
        register_function("test.x", scale, schema=dict)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="already registered"):
        register_function("pde.poisson", scale)
    with pytest.raises(InvalidParameterError, match="not a user-registered"):
        unregister("pde.poisson")


def test_reregistering_the_same_function_is_idempotent(registered: str) -> None:
    assert register_function(registered, scale).name == registered


def test_explicit_schema_is_used() -> None:
    class Params(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        x: float = pydantic.Field(ge=0)

    register_function("test.explicit", scale, schema=Params, replace=True)
    try:
        with pytest.raises(InvalidParameterError, match="greater than or equal to 0"):
            get_workload("test.explicit").validate({"x": -1})
    finally:
        unregister("test.explicit")


def test_unknown_workload_lists_known_names() -> None:
    with pytest.raises(InvalidParameterError, match=r"Unknown workload 'nope'.*pde\.poisson"):
        get_workload("nope")


def test_builtins_are_listed_with_json_schemas() -> None:
    names = {w.name for w in list_workloads() if w.builtin}
    assert {
        "pde.poisson",
        "pde.generate",
        "operators.train",
        "clustering.consensus",
        "habitat.evaluate",
    } <= names
    for w in list_workloads():
        if w.builtin:
            desc = w.describe()
            assert desc["parameters"]["type"] == "object" and desc["description"]
            w.validate({})  # every built-in runs with its defaults


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("pde.poisson", {"resolution": 1}, "resolution"),
        ("pde.poisson", {"kappa": 0}, "kappa"),
        ("pde.generate", {"dataset": "navier"}, "dataset"),
        ("pde.generate", {"n": 10**9}, "n"),
        ("scaleforge.sleep", {"seconds": -1}, "seconds"),
    ],
)
def test_builtin_schemas_reject_bad_values(name: str, params: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidParameterError, match=f"'{field}'"):
        get_workload(name).validate(params)
