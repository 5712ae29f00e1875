"""Argument checks and error-tree contracts shared by every layer."""

from __future__ import annotations

import pickle

import pytest

from scaleforge import errors
from scaleforge._validation import check_choice, check_number, parse_bytes


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (1000, 1000), ("2GB", 2 * 10**9), ("512 MiB", 512 * 2**20), ("1.5kb", 1500), ("7", 7)],
)
def test_parse_bytes(value: object, expected: int) -> None:
    assert parse_bytes(value) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [-1, "2 parsecs", "", True, float("inf"), None])
def test_parse_bytes_rejects(value: object) -> None:
    with pytest.raises(errors.InvalidParameterError, match="'max_bytes' parameter of MemoryTier"):
        parse_bytes(value, owner="MemoryTier")  # type: ignore[arg-type]


def test_check_number_message_names_parameter_value_and_bound() -> None:
    with pytest.raises(errors.InvalidParameterError) as info:
        check_number(-1, "max_wait_s", "DynamicBatcher", minimum=0)
    assert (
        str(info.value)
        == "The 'max_wait_s' parameter of DynamicBatcher must be a number >= 0. Got -1 instead."
    )
    with pytest.raises(errors.InvalidParameterError, match="must be an int"):
        check_number(1.5, "retries", "map", integer=True)
    with pytest.raises(errors.InvalidParameterError, match="must be a number"):
        check_number(True, "x", "f")
    check_number(None, "timeout_s", "map", minimum=0, allow_none=True)
    check_number(0.5, "p", "f", minimum=0, maximum=1)
    with pytest.raises(errors.InvalidParameterError, match="> 0"):
        check_number(0, "p", "f", minimum=0, exclusive_minimum=True)


def test_check_choice() -> None:
    assert check_choice("raise", "on_error", "map", ("raise", "collect")) == "raise"
    with pytest.raises(errors.InvalidParameterError, match=r"one of 'raise', 'collect'\. Got 'ignore'"):
        check_choice("ignore", "on_error", "map", ("raise", "collect"))


def test_error_tree_inherits_the_builtins_callers_catch() -> None:
    assert issubclass(errors.InvalidParameterError, ValueError)
    assert issubclass(errors.InvalidParameterError, TypeError)
    assert issubclass(errors.NotFittedError, AttributeError)
    assert issubclass(errors.MissingDependencyError, ImportError)
    assert issubclass(errors.RequestTimeoutError, TimeoutError)
    assert issubclass(errors.JobNotFoundError, KeyError)
    for name in errors.__all__:
        cls = getattr(errors, name)
        if name != "ScaleforgeWarning":
            assert issubclass(cls, errors.ScaleforgeError), name
    assert issubclass(errors.ScaleforgeWarning, UserWarning)


def test_task_error_survives_pickling_with_its_fields() -> None:
    err = errors.TaskError("item 3 failed", index=3, attempts=2)
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, errors.TaskError)
    assert (str(back), back.index, back.attempts) == ("item 3 failed", 3, 2)
    assert str(errors.JobNotFoundError("no job 'x'")) == "no job 'x'"


def test_import_scaleforge_has_no_heavy_imports() -> None:
    import subprocess
    import sys

    code = (
        "import sys, scaleforge, scaleforge.settings, scaleforge.errors;"
        "heavy=[m for m in ('torch','ray','dask','distributed','redis','fastapi','sklearn','matplotlib') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


def test_top_level_all_matches_the_lazy_exports() -> None:
    import scaleforge

    assert set(scaleforge.__all__) == {*scaleforge._EXPORTS, "__version__"}
    assert scaleforge.__all__ == sorted(scaleforge.__all__)
    for name in scaleforge._EXPORTS:
        assert getattr(scaleforge, name) is not None, name
