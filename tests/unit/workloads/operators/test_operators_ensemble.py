"""Deep-ensemble checkpoints: one subdirectory per member, resumable, and refused when mixed up."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from _optoys import TINY

from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.operators.heads import EnsembleOperator, member_checkpoint_dir
from scaleforge.workloads.operators.training import CHECKPOINT_NAME, TrainConfig

CFG = TrainConfig(epochs=4, batch_size=16, lr=5e-3, patience=None, checkpoint_every=2)


def _ensemble() -> EnsembleOperator:
    return EnsembleOperator(**TINY, n_members=2, executor="threads", training=CFG)


def test_members_checkpoint_to_their_own_subdirectories_and_resume(
    tmp_path: Path, toy_1d: dict[str, np.ndarray]
) -> None:
    x, y, xt = toy_1d["x"][:48], toy_1d["y"][:48], toy_1d["xt"]
    ckpt = tmp_path / "ckpt"
    first = _ensemble().fit(x, y, checkpoint_dir=ckpt)
    files = [member_checkpoint_dir(ckpt, k) / CHECKPOINT_NAME for k in range(2)]
    assert all(f.is_file() for f in files)
    assert files[0].read_bytes() != files[1].read_bytes()  # independently seeded members
    # resuming from finished checkpoints restores each member's best weights: same predictions
    resumed = _ensemble().fit(x, y, checkpoint_dir=ckpt, resume=True)
    for a, b in zip(first.predict(xt), resumed.predict(xt), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    assert [h["epoch"] for h in resumed.history_] == [1, 2, 3, 4]

    # a member resumed from another member's checkpoint (other seed) is refused
    swapped = tmp_path / "swapped"
    shutil.copytree(member_checkpoint_dir(ckpt, 1), member_checkpoint_dir(swapped, 0))
    shutil.copytree(member_checkpoint_dir(ckpt, 0), member_checkpoint_dir(swapped, 1))
    with pytest.raises(InvalidParameterError, match="another architecture"):
        _ensemble().fit(x, y, checkpoint_dir=swapped, resume=True)


def test_resume_without_a_checkpoint_dir_is_rejected(toy_1d: dict[str, np.ndarray]) -> None:
    with pytest.raises(InvalidParameterError, match="checkpoint_dir"):
        _ensemble().fit(toy_1d["x"][:16], toy_1d["y"][:16], resume=True)


def test_ensemble_epistemic_acquisition_is_the_disagreement_of_member_means(
    toy_1d: dict[str, np.ndarray],
) -> None:
    from scaleforge.workloads.operators.active import acquire

    model = EnsembleOperator(
        **TINY, n_members=3, executor="threads", training=TrainConfig(epochs=2, batch_size=16)
    ).fit(toy_1d["x"][:32], toy_1d["y"][:32])
    pool = toy_1d["xt"]
    means = np.stack([m.predict(pool)[0] for m in model.members_])
    disagreement = means.var(axis=0).sum(axis=1)
    _, std = model.predict(pool)
    total = (std**2).sum(axis=1)
    assert np.all(disagreement < total)  # the mixture variance adds the members' noise
    np.testing.assert_array_equal(
        acquire(model, pool, 6, acquisition="epistemic", diverse=False), np.argsort(disagreement)[::-1][:6]
    )
