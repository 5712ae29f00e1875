"""Acquisition for active learning: epistemic scores, batch diversity, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from _optoys import TINY

from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.operators.active import acquire, run_active_learning
from scaleforge.workloads.operators.heads import GaussianOperator
from scaleforge.workloads.operators.laplace import LaplaceOperator
from scaleforge.workloads.operators.training import TrainConfig

CFG = TrainConfig(epochs=4, batch_size=16, lr=5e-3, patience=None)


@pytest.fixture(scope="module")
def laplace(toy_1d: dict[str, np.ndarray]) -> LaplaceOperator:
    return LaplaceOperator(**TINY, training=CFG).fit(toy_1d["x"][:64], toy_1d["y"][:64])


def _summed(a: np.ndarray) -> np.ndarray:
    return np.asarray((a.reshape(a.shape[0], -1) ** 2).sum(axis=1))


def test_epistemic_acquisition_ranks_by_epistemic_not_total_variance(
    laplace: LaplaceOperator, toy_1d: dict[str, np.ndarray]
) -> None:
    pool = toy_1d["xt"]
    epi = _summed(laplace.predict_epistemic(pool))
    total = _summed(laplace.predict(pool)[1])
    k = 8
    picked = acquire(laplace, pool, k, acquisition="epistemic", diverse=False)
    np.testing.assert_array_equal(picked, np.argsort(epi)[::-1][:k])
    np.testing.assert_array_equal(
        acquire(laplace, pool, k, acquisition="total", diverse=False), np.argsort(total)[::-1][:k]
    )
    # the heteroscedastic head's total variance is mostly noise: the epistemic part is a small share
    assert np.all(epi < total)


@pytest.mark.parametrize("acquisition", ["epistemic", "total"])
def test_diverse_batches_hold_no_duplicates(
    acquisition: str, laplace: LaplaceOperator, toy_1d: dict[str, np.ndarray]
) -> None:
    base = toy_1d["xt"]
    sd = laplace.predict_epistemic(base) if acquisition == "epistemic" else laplace.predict(base)[1]
    top = int(np.argmax(_summed(sd)))
    pool = np.concatenate([base, np.repeat(base[top : top + 1], 4, axis=0)])
    copies = {top, *range(base.shape[0], pool.shape[0])}
    k = 5
    # without diversity the batch is five copies of the most uncertain field
    assert set(acquire(laplace, pool, k, acquisition=acquisition, diverse=False).tolist()) == copies
    picked = acquire(laplace, pool, k, acquisition=acquisition, diverse=True)
    assert len(set(picked.tolist())) == k
    assert len(copies & set(picked.tolist())) == 1
    assert int(picked[0]) in copies  # the first pick is still the most uncertain field


def test_bad_acquisition_input_is_rejected(toy_1d: dict[str, np.ndarray], laplace: LaplaceOperator) -> None:
    gaussian = GaussianOperator(**TINY, training=TrainConfig(epochs=1)).fit(
        toy_1d["x"][:16], toy_1d["y"][:16]
    )
    with pytest.raises(InvalidParameterError, match="acquisition='total'"):
        acquire(gaussian, toy_1d["xt"], 2, acquisition="epistemic")
    assert acquire(gaussian, toy_1d["xt"], 2, acquisition="total").shape == (2,)
    with pytest.raises(InvalidParameterError, match="acquisition"):
        acquire(laplace, toy_1d["xt"], 2, acquisition="entropy")
    with pytest.raises(InvalidParameterError, match="'k'"):
        acquire(laplace, toy_1d["xt"], 33)
    with pytest.raises(InvalidParameterError, match="head='laplace' or 'ensemble'"):
        run_active_learning(head="gaussian", acquisition="epistemic")
    with pytest.raises(InvalidParameterError, match="acquisition"):
        run_active_learning(acquisition="bald")
