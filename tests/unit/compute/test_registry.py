"""Executor registry: names, registration checks, missing extras, metrics."""

from __future__ import annotations

import sys
from concurrent.futures import Future
from typing import Any

import pytest

import scaleforge as sf
from scaleforge.compute.base import Executor
from scaleforge.compute.local import ThreadExecutor
from scaleforge.compute.registry import available_executors, executor, register_executor
from scaleforge.errors import InvalidParameterError, MissingDependencyError


class _InlineExecutor(Executor):
    name = "inline"

    def submit_task(
        self,
        fn: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> Future[Any]:
        fut: Future[Any] = Future()
        try:
            fut.set_result(fn(*args, **(kwargs or {})))
        except Exception as exc:
            fut.set_exception(exc)
        return fut

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass

    @property
    def num_workers(self) -> int:
        return 1

    @property
    def needs_pickling(self) -> bool:
        return False


def test_register_and_use_a_backend() -> None:
    register_executor("inline", _InlineExecutor)
    assert "inline" in available_executors()
    assert sf.map(abs, [-1, -2], executor="inline") == [1, 2]


@pytest.mark.parametrize("cls", [int, Executor, "processes"])
def test_register_rejects_non_executors(cls: object) -> None:
    with pytest.raises(InvalidParameterError, match="concrete subclass"):
        register_executor("bad", cls)  # type: ignore[arg-type]


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(InvalidParameterError, match="'processes'"):
        executor("nope")


def test_unknown_option_is_reported() -> None:
    with pytest.raises(InvalidParameterError, match="does not accept"):
        executor("threads", colour="blue")


def test_executor_uses_config_context() -> None:
    with sf.config_context(executor="threads"):
        ex = executor()
    assert isinstance(ex, ThreadExecutor)
    ex.shutdown()


@pytest.mark.parametrize(
    ("name", "module", "extra"), [("ray", "ray", "ray"), ("dask", "distributed", "dask")]
)
def test_missing_extra_says_what_to_install(
    name: str, module: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import fails like an absent package
    with pytest.raises(MissingDependencyError, match=rf"pip install 'scaleforge\[{extra}\]'"):
        executor(name)


def test_metrics_count_items() -> None:
    from scaleforge.monitor.metrics import REGISTRY

    def sample(name: str) -> float:
        return REGISTRY.get_sample_value(name, {"executor": "threads"}) or 0.0

    before = {
        n: sample(n)
        for n in (
            "scaleforge_tasks_submitted_total",
            "scaleforge_tasks_completed_total",
            "scaleforge_tasks_failed_total",
            "scaleforge_tasks_retried_total",
        )
    }
    sf.map(lambda x: 1 // x, [1, 0, 2], executor="threads", retries=1, retry_backoff_s=0, on_error="collect")
    assert sample("scaleforge_tasks_completed_total") - before["scaleforge_tasks_completed_total"] == 2
    assert sample("scaleforge_tasks_failed_total") - before["scaleforge_tasks_failed_total"] == 1
    assert sample("scaleforge_tasks_retried_total") - before["scaleforge_tasks_retried_total"] == 1
    assert sample("scaleforge_tasks_submitted_total") - before["scaleforge_tasks_submitted_total"] == 4
    assert REGISTRY.get_sample_value("scaleforge_workers", {"executor": "threads"}) is not None
