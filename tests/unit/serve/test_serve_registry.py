"""The on-disk registry: atomic versions, checksums, loaders, routing (A/B, sticky, shadow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scaleforge.errors import IntegrityError, InvalidParameterError
from scaleforge.serve.base import ModelContext
from scaleforge.serve.registry import ModelRegistry, Routing, check_name, import_object

MODEL_PY = b"""
def triple(x):
    return 3 * x
"""


def _publish(reg: ModelRegistry, version: str, **kw: object) -> None:
    reg.publish("tri", version, {"model.py": MODEL_PY}, loader="python", entry="model.py:triple", **kw)  # type: ignore[arg-type]


def test_publish_writes_metadata_and_loads_a_python_entry(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    _publish(reg, "1", options={"input_shape": [2]}, metadata={"owner": "me"})
    info = reg.info("tri", "1")
    assert info.loader == "python" and info.metadata == {"owner": "me"} and len(info.sha256) == 64
    api, _ = reg.load_api("tri", "1")
    ctx = ModelContext(name="tri", version="1")
    assert api.predict([api.decode([1, 2], ctx)], ctx)[0].tolist() == [3, 6]
    assert reg.models() == ["tri"] and reg.versions("tri") == ["1"]
    assert not list((tmp_path / "tri").glob(".*"))  # no temporary directory left behind


def test_versions_sort_naturally_and_default_is_newest_unless_set(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    for v in ["2", "10", "1"]:
        _publish(reg, v)
    assert reg.versions("tri") == ["1", "2", "10"]
    assert reg.default_version("tri") == "10"
    reg.set_default("tri", "2")
    assert reg.default_version("tri") == "2"


def test_versions_are_immutable(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    _publish(reg, "1")
    with pytest.raises(InvalidParameterError, match="immutable"):
        _publish(reg, "1")


@pytest.mark.parametrize("change", ["modify", "add", "remove"])
def test_tampered_version_fails_its_checksum_and_is_not_loaded(tmp_path: Path, change: str) -> None:
    reg = ModelRegistry(tmp_path)
    reg.publish(
        "tri", "1", {"model.py": MODEL_PY, "extra.bin": b"\x00\x01"}, loader="python", entry="model.py:triple"
    )
    vdir = tmp_path / "tri" / "1"
    if change == "modify":
        (vdir / "model.py").write_bytes(MODEL_PY.replace(b"3 * x", b"4 * x"))
    elif change == "add":
        (vdir / "evil.py").write_bytes(b"import os")
    else:
        (vdir / "extra.bin").unlink()
    with pytest.raises(IntegrityError, match="Checksum mismatch"):
        reg.load_api("tri", "1")


def test_bad_names_loaders_and_paths_are_rejected(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    for bad in ["", "../x", "a/b", ".", "-x"]:
        with pytest.raises(InvalidParameterError):
            check_name(bad)
    with pytest.raises(InvalidParameterError, match="loader"):
        reg.publish("m", "1", {}, loader="pickle", entry="x")
    with pytest.raises(InvalidParameterError, match="not allowed"):
        reg.publish("m", "1", {"../escape.py": b""}, loader="python", entry="x:y")
    with pytest.raises(InvalidParameterError, match="no version"):
        reg.info("m", "7")


def test_import_object_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match=r"package\.module:object"):
        import_object("no_colon")
    with pytest.raises(InvalidParameterError, match="Cannot import"):
        import_object("scaleforge_no_such_module:x")
    with pytest.raises(InvalidParameterError, match="no attribute"):
        import_object("math:nope")
    assert import_object("math:sqrt")(9.0) == 3.0


def test_remove_drops_the_version_from_routing(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    _publish(reg, "1")
    _publish(reg, "2")
    reg.set_routing("tri", Routing(default="1", weights={"1": 1, "2": 1}, shadow="2"))
    reg.remove("tri", "2")
    assert reg.versions("tri") == ["1"]
    r = reg.routing("tri")
    assert r.shadow is None and dict(r.weights) == {"1": 1}


def test_weighted_split_matches_weights() -> None:
    r = Routing(weights={"a": 1.0, "b": 3.0})
    grid = np.linspace(0, 1, 10_000, endpoint=False)
    picks = [r.choose(rand=float(u)) for u in grid]
    assert picks.count("b") / len(picks) == pytest.approx(0.75, abs=1e-3)


def test_sticky_key_always_gets_the_same_version_and_keys_spread() -> None:
    r = Routing(weights={"a": 1.0, "b": 1.0}, sticky_header="x-user-id")
    for key in ["alice", "bob", "carol"]:
        assert len({r.choose(key, rand=u) for u in (0.0, 0.5, 0.99)}) == 1
    share = sum(r.choose(f"user-{i}") == "a" for i in range(4000)) / 4000
    assert share == pytest.approx(0.5, abs=0.05)


def test_zero_weight_version_is_never_chosen() -> None:
    r = Routing(weights={"a": 0.0, "b": 2.0})
    assert {r.choose(rand=u) for u in np.linspace(0, 0.999, 50)} == {"b"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"weights": {"a": -1}},
        {"weights": {"a": 0, "b": 0}},
        {"weights": {"a": "x"}},
        {"sticky_header": "bad header!"},
        {"default": "../1"},
    ],
)
def test_routing_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidParameterError):
        Routing(**kwargs)  # type: ignore[arg-type]


def test_routing_json_round_trip_rejects_unknown_fields() -> None:
    r = Routing(default="1", weights={"1": 0.5, "2": 0.5}, sticky_header="x-user", shadow="3")
    assert Routing.from_dict(r.to_dict()) == r
    with pytest.raises(InvalidParameterError, match="Unknown routing"):
        Routing.from_dict({"defualt": "1"})
