"""Ring buffers, counter rates and SQLite persistence of the time-series store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scaleforge.errors import InvalidParameterError
from scaleforge.monitor.timeseries import RingBuffer, TimeSeriesStore


def test_ring_buffer_keeps_newest_in_order() -> None:
    buf = RingBuffer(3)
    for i in range(5):
        buf.append(float(i), 10.0 * i)
    t, v = buf.arrays()
    assert t.tolist() == [2.0, 3.0, 4.0]
    assert v.tolist() == [20.0, 30.0, 40.0]
    assert buf.last() == (4.0, 40.0)
    assert len(buf) == 3


def test_rate_of_a_counter_is_exact() -> None:
    store = TimeSeriesStore(capacity=100)
    for i in range(11):
        store.append("c", 7.0 * i, t=100.0 + 0.5 * i)  # 7 every 0.5 s = 14/s
    assert store.rate("c") == pytest.approx(14.0)
    assert store.rate("c", window_s=1.0) == pytest.approx(14.0)
    t, r = store.rate_series("c")
    assert np.allclose(r, 14.0)
    assert len(t) == 10


def test_rate_counts_a_counter_reset() -> None:
    store = TimeSeriesStore()
    for t, v in [(0, 10), (1, 20), (2, 5), (3, 15)]:  # restart at t=2: +10, +5, +10
        store.append("c", v, t=t)
    assert store.rate("c") == pytest.approx(25.0 / 3.0)


def test_rate_needs_two_points_and_unknown_series_is_empty() -> None:
    store = TimeSeriesStore()
    assert store.rate("nope") is None
    store.append("one", 1.0, t=0.0)
    assert store.rate("one") is None
    t, v = store.get("nope")
    assert t.size == 0 and v.size == 0
    assert store.last("nope") is None


def test_non_finite_values_are_skipped() -> None:
    store = TimeSeriesStore()
    store.extend({"a": float("nan"), "b": 1.0}, t=0.0)
    assert "a" not in store
    assert store.names() == ["b"]


def test_sqlite_history_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ts.sqlite"
    with TimeSeriesStore(capacity=5, path=path, flush_every=3) as store:
        for i in range(8):
            store.append("x", float(i), t=float(i))
            store.append("y", -float(i), t=float(i))
    with TimeSeriesStore(capacity=5, path=path) as again:
        t, _v = again.get("x")
        assert t.tolist() == [3.0, 4.0, 5.0, 6.0, 7.0]  # the newest `capacity` points
        assert again.last("y") == -7.0


def test_retention_deletes_old_points(tmp_path: Path) -> None:
    path = tmp_path / "ts.sqlite"
    with TimeSeriesStore(path=path, retention_s=60.0) as store:
        store.append("x", 1.0, t=1.0)  # 1970: far older than 60 s
        store.flush()
    with TimeSeriesStore(path=path) as again:
        assert "x" not in again


def test_unusable_sqlite_path_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(InvalidParameterError, match="not a usable SQLite file"):
        TimeSeriesStore(path=bad)
    with pytest.raises(InvalidParameterError, match="not a usable SQLite file"):
        TimeSeriesStore(path=tmp_path)  # a directory


@pytest.mark.parametrize("capacity", [0, -1, 1.5, "10"])
def test_capacity_is_validated(capacity: object) -> None:
    with pytest.raises(InvalidParameterError, match="capacity"):
        TimeSeriesStore(capacity=capacity)  # type: ignore[arg-type]
