"""Each head trains on a tiny problem, beats the mean predictor, and round-trips through save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _optoys import TINY

from scaleforge.errors import IntegrityError, InvalidParameterError, NotFittedError
from scaleforge.workloads.operators import metrics as M
from scaleforge.workloads.operators.base import ProbabilisticOperator, make_operator
from scaleforge.workloads.operators.heads import EnsembleOperator, GaussianOperator, GenerativeOperator
from scaleforge.workloads.operators.laplace import LaplaceOperator
from scaleforge.workloads.operators.training import TrainConfig

CFG = TrainConfig(epochs=40, batch_size=16, lr=5e-3, patience=None)
HEADS = {
    "gaussian": lambda: GaussianOperator(**TINY, training=CFG),
    "crps": lambda: GenerativeOperator(**TINY, latent=4, n_predict_samples=32, training=CFG),
    "ensemble": lambda: EnsembleOperator(**TINY, n_members=2, executor="threads", training=CFG),
    "laplace": lambda: LaplaceOperator(**TINY, training=CFG),
}


@pytest.fixture(scope="module")
def fitted(toy_1d: dict[str, np.ndarray]) -> dict[str, ProbabilisticOperator]:
    return {name: make().fit(toy_1d["x"], toy_1d["y"]) for name, make in HEADS.items()}


@pytest.mark.parametrize("head", sorted(HEADS))
def test_head_beats_the_mean_predictor(
    head: str, fitted: dict[str, ProbabilisticOperator], toy_1d: dict[str, np.ndarray]
) -> None:
    model = fitted[head]
    xt, yt = toy_1d["xt"], toy_1d["yt"]
    mean, std = model.predict(xt)
    assert mean.shape == std.shape == yt.shape
    assert np.all(std > 0)
    # the mean predictor: training mean field, with the training std per point
    base_mean = np.broadcast_to(toy_1d["y"].mean(axis=0), yt.shape)
    base_std = np.broadcast_to(toy_1d["y"].std(axis=0), yt.shape)
    assert M.rel_l2(yt, mean) < 0.5 * M.rel_l2(yt, base_mean)
    assert M.crps_gaussian(yt, mean, std) < 0.5 * M.crps_gaussian(yt, base_mean, base_std)
    draws = model.sample(xt[:3], 5, random_state=1)
    assert draws.shape == (3, 5, xt.shape[1])
    np.testing.assert_array_equal(draws, model.sample(xt[:3], 5, random_state=1))


@pytest.mark.parametrize("head", sorted(HEADS))
def test_save_load_round_trip(
    head: str, fitted: dict[str, ProbabilisticOperator], toy_1d: dict[str, np.ndarray], tmp_path: Path
) -> None:
    model = fitted[head]
    path = model.save(tmp_path / "model.sfop")
    loaded = ProbabilisticOperator.load(path)
    assert type(loaded) is type(model)
    for a, b in zip(model.predict(toy_1d["xt"]), loaded.predict(toy_1d["xt"]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6 if head != "crps" else 1e-5)


def test_corrupt_model_file_is_detected_not_loaded(
    fitted: dict[str, ProbabilisticOperator], tmp_path: Path
) -> None:
    path = fitted["gaussian"].save(tmp_path / "m.sfop")
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte in the weights
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="Checksum mismatch"):
        ProbabilisticOperator.load(path)
    path.write_bytes(b"not a model")
    with pytest.raises(IntegrityError, match="not a scaleforge operator file"):
        ProbabilisticOperator.load(path)


def test_loading_another_head_or_architecture_is_refused(
    fitted: dict[str, ProbabilisticOperator], tmp_path: Path
) -> None:
    path = fitted["gaussian"].save(tmp_path / "m.sfop")
    with pytest.raises(InvalidParameterError, match="holds a GaussianOperator"):
        LaplaceOperator.load(path)
    other = GaussianOperator(**{**TINY, "width": 8})
    other.dim_, other.resolution_ = 1, (32,)
    from scaleforge.workloads.operators.base import read_blob

    _, payload = read_blob(path)
    with pytest.raises(InvalidParameterError, match="another architecture"):
        other._set_state(payload)


def test_bad_inputs_give_clear_errors(toy_1d: dict[str, np.ndarray]) -> None:
    x, y = toy_1d["x"], toy_1d["y"]
    model = GaussianOperator(**TINY, training=TrainConfig(epochs=1))
    with pytest.raises(NotFittedError, match="not fitted"):
        model.predict(x)
    bad = x.copy()
    bad[3, 4] = np.nan
    with pytest.raises(InvalidParameterError, match="1 NaN"):
        model.fit(bad, y)
    with pytest.raises(InvalidParameterError, match="one shape"):
        model.fit(x, y[:, :16])
    with pytest.raises(InvalidParameterError, match="'head' parameter must be one of"):
        make_operator("dropout")
    with pytest.raises(InvalidParameterError, match="'width' parameter"):
        GaussianOperator(width=0).fit(x, y)
    with pytest.raises(InvalidParameterError, match="'beta' parameter"):
        GaussianOperator(**TINY, beta=2.0).fit(x, y)
    with pytest.raises(InvalidParameterError, match="'score' parameter"):
        GenerativeOperator(**TINY, score="log").fit(x, y)


def test_two_dimensional_fields() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 12, 12))
    y = 2.0 * x + 1.0
    model = LaplaceOperator(
        width=8, modes=4, depth=1, hidden=8, padding=0.1, training=TrainConfig(epochs=3)
    ).fit(x, y)
    mean, std = model.predict(x[:2])
    assert mean.shape == std.shape == (2, 12, 12)
    assert model.sample(x[:2], 3).shape == (2, 3, 12, 12)


def test_a_fresh_process_loads_any_head_by_file(
    fitted: dict[str, ProbabilisticOperator], tmp_path: Path
) -> None:
    # what the model server does: import only the base module, then load
    import subprocess
    import sys

    path = fitted["laplace"].save(tmp_path / "m.sfop")
    code = (
        "import sys, numpy as np\n"
        "from scaleforge.workloads.operators.base import ProbabilisticOperator\n"
        f"m = ProbabilisticOperator.load({str(path)!r})\n"
        "mean, std = m.predict(np.zeros((1, 32)))\n"
        "print(type(m).__name__, mean.shape, bool((std > 0).all()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["LaplaceOperator", "(1,", "32)", "True"]
