"""Job results: JSON or signed cache-codec frames on disk; JSON or .npy over HTTP; exact round trips."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from _jobs_helpers import arrays, serve_in_thread, signing_key, sqlite_db  # noqa: F401 - fixture

from scaleforge.codec import Signer
from scaleforge.errors import JobError, NotAcceptableError
from scaleforge.jobs.client import Client
from scaleforge.jobs.models import JobSpec
from scaleforge.jobs.results import from_json, is_plain_json, read_result, to_json, write_result
from scaleforge.jobs.service import create_app
from scaleforge.jobs.store import SQLJobStore
from scaleforge.jobs.worker import Worker

pytestmark = pytest.mark.usefixtures("signing_key")  # result frames are signed

KEY = Signer(bytes(range(32)))


def _assert_same(a: Any, b: Any) -> None:
    """Equal values with equal types; arrays equal with equal dtype and shape (NaN == NaN)."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    else:
        assert type(a) is type(b) and a == b


@pytest.mark.parametrize(
    "value",
    [
        {"u_max": 0.0736, "dofs": 81, "ok": True, "note": None, "xs": [1, 2.5, "a"]},
        np.linspace(0, 1, 7).reshape(7, 1),
        np.zeros((0, 3), dtype=np.int16),
        np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        arrays(5, seed=3),
        {1, 2, 3},
        {1: "int keys"},
        float("nan"),
    ],
    ids=["json", "array", "empty", "fortran", "dict-of-arrays", "set", "int-keys", "nan"],
)
def test_files_round_trip_exactly(tmp_path: Path, value: Any) -> None:
    path = write_result(value, tmp_path / "job", "tok", signer=KEY)
    assert path.suffix == (".json" if is_plain_json(value) else ".sfc")
    back = read_result(path.as_uri(), signer=KEY)
    if isinstance(value, float):
        assert np.isnan(back)
    else:
        _assert_same(value, back)
    assert [p.name for p in (tmp_path / "job").iterdir()] == [path.name]  # no temporary left


def test_a_tampered_or_foreign_frame_is_refused_not_unpickled(tmp_path: Path) -> None:
    path = write_result({"a": np.arange(3)}, tmp_path, "tok", signer=KEY)
    with pytest.raises(JobError, match="signing key"):
        read_result(path.as_uri(), signer=Signer(bytes(32)))  # another key
    data = bytearray(path.read_bytes())
    data[-40] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(JobError, match="MAC"):
        read_result(path.as_uri(), signer=KEY)
    (tmp_path / "x.bin").write_bytes(b"x")
    with pytest.raises(JobError, match=r"\.json or \.sfc"):
        read_result((tmp_path / "x.bin").as_uri(), signer=KEY)


def test_json_form_keeps_dtype_shape_and_non_finite_values() -> None:
    value = arrays(4, seed=1)
    wire = to_json(value)
    assert wire["ids"] == {"__ndarray__": True, "dtype": "int32", "shape": [4], "data": [0, 1, 2, 3]}
    assert wire["edge"]["data"] == ["nan", "inf", "-inf", 1.5]
    import orjson

    _assert_same(value, from_json(orjson.loads(orjson.dumps(wire))))
    assert to_json((1, np.float32(0.5), {2, 1})) == [1, 0.5, [1, 2]]
    with pytest.raises(NotAcceptableError, match="object"):
        to_json(object())
    with pytest.raises(NotAcceptableError, match="dtype object"):
        to_json(np.array([object()]))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLJobStore]:
    s = sqlite_db(tmp_path).open()
    yield s
    s.close()


def test_array_results_over_http_as_json_and_npy(store: SQLJobStore, tmp_path: Path) -> None:
    many, _ = store.submit(JobSpec("jobstest.arrays", {"n": 3, "seed": 7}), owner="local")
    one, _ = store.submit(JobSpec("jobstest.one_array", {"n": 4}), owner="local")
    worker = Worker(store, executor="processes", result_dir=tmp_path / "r", poll_interval_s=0.02)
    assert worker.run(stop_when_idle=True) == 2
    assert store.get(many.id).result_ref.endswith(".sfc")  # type: ignore[union-attr]
    with serve_in_thread(create_app(store, tokens={})) as url:
        with Client(url) as client:
            _assert_same(arrays(3, seed=7), client.result(many.id))  # known answer: same seed
            got = client.result_array(one.id)
            assert got.dtype == np.float32 and got.shape == (1, 4)
            np.testing.assert_array_equal(got, np.arange(4, dtype=np.float32).reshape(1, 4))
            with pytest.raises(JobError, match="406"):
                client.result_array(many.id)  # a dict is not one array
        with httpx.Client(base_url=url) as http:
            r = http.get(f"/v1/jobs/{one.id}/result", headers={"Accept": "application/x-npy"})
            assert r.headers["content-type"] == "application/x-npy"
            assert np.load(io.BytesIO(r.content)).tolist() == [[0.0, 1.0, 2.0, 3.0]]
            r = http.get(f"/v1/jobs/{one.id}/result", headers={"Accept": "application/json"})
            assert r.json()["result"]["dtype"] == "float32" and r.json()["result"]["shape"] == [1, 4]
            prefers_json = "application/x-npy;q=0.5, application/json"
            r = http.get(f"/v1/jobs/{one.id}/result", headers={"Accept": prefers_json})
            assert r.headers["content-type"] == "application/json"
