"""scaleforge.map / imap: validation, order, retries, collection, bounded imap, selection."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import scaleforge as sf
from scaleforge.compute.local import ThreadExecutor
from scaleforge.errors import InvalidParameterError, TaskError


def _inc(x: int) -> int:
    return x + 1


def _add(a: int, b: int, *, offset: int = 0) -> int:
    return a + b + offset


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"retries": -1}, "retries"),
        ({"retry_backoff_s": -0.5}, "retry_backoff_s"),
        ({"timeout_s": -1}, "timeout_s"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"on_error": "ignore"}, "on_error"),
        ({"chunksize": 0}, "chunksize"),
        ({"chunksize": "big"}, "chunksize"),
        ({"ordered": "yes"}, "ordered"),
        ({"progress": "loud"}, "progress"),
        ({"executor": "teleport"}, "teleport"),
        ({"executor": 3}, "executor"),
    ],
)
def test_bad_options_raise_before_running(kwargs: dict[str, object], match: str, tmp_path: Path) -> None:
    calls = tmp_path / "calls"

    def record(x: int) -> int:
        calls.touch()
        return x

    with pytest.raises(InvalidParameterError, match=match):
        sf.map(record, [1, 2], **kwargs)  # type: ignore[arg-type]
    assert not calls.exists()


def test_non_callable_fn() -> None:
    with pytest.raises(InvalidParameterError, match=r"'fn' parameter .* must be callable"):
        sf.map(42, [1])  # type: ignore[arg-type]


def test_mismatched_lengths() -> None:
    with pytest.raises(InvalidParameterError, match=r"different lengths \[3, 2\]"):
        sf.map(_add, [1, 2, 3], [1, 2])


def test_not_iterable() -> None:
    with pytest.raises(InvalidParameterError, match="not iterable"):
        sf.map(_inc, 5)  # type: ignore[arg-type]


def test_unpicklable_function_is_named() -> None:
    lock = threading.Lock()

    def uses_lock(x: int) -> int:
        with lock:
            return x

    with pytest.raises(InvalidParameterError, match=r"the function .*uses_lock.* cannot be pickled"):
        sf.map(uses_lock, [1], executor="processes")


def test_unpicklable_item_and_shared_argument_are_named() -> None:
    with pytest.raises(InvalidParameterError, match="item 0 of the input"):
        sf.map(id, [threading.Lock()], executor="processes")
    with pytest.raises(InvalidParameterError, match="shared argument 'guard'"):
        sf.map(_add, [1], [2], executor="processes", guard=threading.Lock())


def test_threads_accept_unpicklable_values() -> None:
    lock = threading.Lock()
    assert sf.map(lambda x: x if lock else 0, [1, 2], executor="threads") == [1, 2]


def test_several_iterables_and_shared_kwargs() -> None:
    assert sf.map(_add, [1, 2, 3], (10, 20, 30), offset=100) == [111, 122, 133]


def test_generators_and_empty_input() -> None:
    assert sf.map(_inc, (i for i in range(5))) == [1, 2, 3, 4, 5]
    assert sf.map(_inc, []) == []


def test_explicit_chunksize_gives_same_results() -> None:
    assert sf.map(_inc, range(101), chunksize=7) == list(range(1, 102))


def _fail_odd_once(x: int, log: str) -> int:
    path = Path(log) / str(x)
    if x % 2 and not path.exists():
        path.touch()
        raise ValueError(f"transient {x}")
    return x


def test_retries_recover_transient_failures(tmp_path: Path) -> None:
    report = sf.map(
        _fail_odd_once, range(10), retries=1, retry_backoff_s=0.0, on_error="collect", log=str(tmp_path)
    )
    assert report.ok and report.results == list(range(10))
    assert report.retried == 5


def _always_fail(x: int, log: str) -> int:
    with open(log, "a") as fh:
        fh.write(f"{x}\n")
    raise KeyError(f"missing {x}")


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_exactly_retries_plus_one_attempts(retries: int, tmp_path: Path) -> None:
    log = tmp_path / "log"
    with pytest.raises(TaskError) as info:
        sf.map(_always_fail, [0, 1, 2, 3], retries=retries, retry_backoff_s=0.001, log=str(log), chunksize=1)
    err = info.value
    assert err.attempts == retries + 1
    assert f"Item {err.index} ({err.index})" in str(err)
    assert isinstance(err.__cause__, KeyError)
    counts = {int(line) for line in log.read_text().split()}
    assert err.index in counts
    assert log.read_text().split().count(str(err.index)) == retries + 1


def test_collect_counts_attempts(tmp_path: Path) -> None:
    report = sf.map(
        _always_fail, [5, 6], retries=2, retry_backoff_s=0.0, on_error="collect", log=str(tmp_path / "l")
    )
    assert report.n_failed == 2 and report.results == [None, None]
    assert [(e.index, e.attempts, e.exception_type) for e in report.errors] == [
        (0, 3, "KeyError"),
        (1, 3, "KeyError"),
    ]
    with pytest.raises(TaskError):
        report.raise_first()


def test_task_error_summarises_long_input() -> None:
    with pytest.raises(TaskError) as info:
        sf.map(lambda s: 1 / 0, ["x" * 1000], executor="threads")
    assert len(str(info.value)) < 400
    assert "..." in str(info.value)


def test_unordered_returns_all() -> None:
    assert sorted(sf.map(_inc, range(200), ordered=False)) == list(range(1, 201))


def test_imap_pulls_a_bounded_window_from_an_infinite_generator() -> None:
    pulled = itertools.count()

    def source() -> Iterator[int]:
        for i in itertools.count():
            next(pulled)
            yield i

    it = sf.imap(_inc, source(), executor="threads")
    first = list(itertools.islice(it, 50))
    assert first == list(range(1, 51))
    # bounded (an unbounded reader would never return from an infinite input): at most
    # 4 x window x chunk size, capped by AutoChunker.max_size
    assert next(pulled) <= 4 * 2 * 2 * 100_000
    it.close()


def test_imap_unordered_and_collect() -> None:
    out = list(sf.imap(lambda x: 1 // x, [1, 0, 1], executor="threads", ordered=False, on_error="collect"))
    errors = [o for o in out if isinstance(o, sf.compute.ItemError)]
    assert len(out) == 3 and [e.index for e in errors] == [1]


def test_abandoned_imap_cancels_what_is_left(tmp_path: Path) -> None:
    started = tmp_path / "started"
    started.mkdir()
    ex = ThreadExecutor(max_workers=1)

    def slow(x: int) -> int:
        (started / str(x)).touch()
        threading.Event().wait(0.05)
        return x

    it = sf.imap(slow, range(1000), executor=ex, chunksize=1)
    assert next(it) == 0
    it.close()
    ex.shutdown(wait=True)
    assert len(list(started.iterdir())) < 10


def test_config_context_selects_the_executor() -> None:
    import os

    with sf.config_context(executor="threads"):
        pids = sf.map(lambda _: os.getpid(), range(4))
    assert set(pids) == {os.getpid()}


def test_settings_select_the_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from scaleforge.settings import Settings, set_settings

    set_settings(Settings(compute={"executor": "threads"}))
    try:
        assert set(sf.map(lambda _: os.getpid(), range(3))) == {os.getpid()}
    finally:
        set_settings(None)


def test_executor_instance_is_accepted() -> None:
    with sf.executor("threads", max_workers=2) as ex:
        assert sf.map(_inc, [1], executor=ex) == [2]


def test_progress_bar_reports_counts(capsys: pytest.CaptureFixture[str]) -> None:
    report = sf.map(_inc, range(30), progress=True, on_error="collect")
    assert report.ok
    err = capsys.readouterr().err
    assert "30/30" in err and "hits 0" in err and "failed 0" in err


def test_environment_variable_selects_the_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from scaleforge.settings import set_settings

    monkeypatch.setenv("SCALEFORGE_COMPUTE__EXECUTOR", "threads")
    set_settings(None)  # reload from the environment
    try:
        assert set(sf.map(lambda _: os.getpid(), range(3))) == {os.getpid()}
    finally:
        monkeypatch.delenv("SCALEFORGE_COMPUTE__EXECUTOR")
        set_settings(None)
