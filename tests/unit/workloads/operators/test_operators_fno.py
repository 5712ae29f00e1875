"""FNO: shapes, both signs of 2D frequencies, resolution invariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _optoys import TINY, make_toy

from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.operators.fno import FNO, SpectralConv2d
from scaleforge.workloads.operators.heads import GaussianOperator
from scaleforge.workloads.operators.metrics import rel_l2
from scaleforge.workloads.operators.training import TrainConfig


@pytest.mark.parametrize(("dim", "shape"), [(1, (3, 32)), (2, (3, 16, 20))])
def test_fno_output_shapes(dim: int, shape: tuple[int, ...]) -> None:
    net = FNO(dim, out_channels=2, width=8, modes=4, depth=2, hidden=16)
    x = torch.randn(*shape)
    assert net(x).shape == (*shape, 2)
    assert net.features(x).shape == (*shape, 16)
    assert net(torch.randn(shape[0], *(2 * s for s in shape[1:]))).shape == (
        shape[0],
        *(2 * s for s in shape[1:]),
        2,
    )


def test_fno_padding_and_latent_shapes() -> None:
    net = FNO(2, width=8, modes=4, depth=2, hidden=16, latent=3, padding=0.25)
    out = net(torch.randn(2, 16, 16), torch.randn(2, 3))
    assert out.shape == (2, 16, 16, 1)
    with pytest.raises(ValueError, match="latent"):
        net(torch.randn(2, 16, 16))


@pytest.mark.parametrize(("k1", "k2"), [(2, 3), (-2, 3), (-3, 0), (0, 1)])
def test_spectral_conv_2d_keeps_positive_and_negative_modes(k1: int, k2: int) -> None:
    # With identity spectral weights a retained mode must pass through unchanged;
    # a layer without the negative-frequency block would erase cos(2π(k1 x + k2 y)) for k1 < 0.
    s = 16
    conv = SpectralConv2d(1, 1, modes=4)
    with torch.no_grad():
        for w in (conv.weight_pos, conv.weight_neg):
            w.zero_()
            w[..., 0] = 1.0
    ii, jj = np.meshgrid(np.arange(s) / s, np.arange(s) / s, indexing="ij")
    field = np.cos(2 * np.pi * (k1 * ii + k2 * jj))
    with torch.no_grad():
        out = conv(torch.tensor(field, dtype=torch.float32)[None, None])[0, 0].numpy()
        out_high = conv(torch.tensor(np.cos(2 * np.pi * 6 * ii), dtype=torch.float32)[None, None]).numpy()
    np.testing.assert_allclose(out, field, atol=1e-5)
    # and a mode beyond the retained band is removed
    assert np.abs(out_high).max() < 1e-5


def test_trained_model_evaluates_at_twice_the_resolution() -> None:
    # the toy fields are band-limited, so the 64-point grid samples the same functions as the 32-point one
    x, y = make_toy(96, 32, 1)
    xt32, yt32 = make_toy(24, 32, 2)
    xt64, yt64 = make_toy(24, 64, 2)
    np.testing.assert_allclose(xt64[:, ::2], xt32, atol=1e-10)
    model = GaussianOperator(**TINY, training=TrainConfig(epochs=40, lr=5e-3)).fit(x, y)
    m32, _ = model.predict(xt32)
    m64, s64 = model.predict(xt64)
    assert m64.shape == s64.shape == (24, 64)
    e32, e64 = rel_l2(yt32, m32), rel_l2(yt64, m64)
    assert e32 < 0.3
    assert e64 < 1.5 * e32 + 0.02  # the operator, not the grid, was learned
    np.testing.assert_allclose(m64[:, ::2], m32, atol=0.1 * np.abs(yt32).max())


def test_wrong_dimension_and_too_coarse_grids_are_rejected(toy_1d: dict[str, np.ndarray]) -> None:
    model = GaussianOperator(**TINY, training=TrainConfig(epochs=1)).fit(toy_1d["x"], toy_1d["y"])
    with pytest.raises(InvalidParameterError, match="trained on 1D"):
        model.predict(np.zeros((2, 16, 16)))
    with pytest.raises(InvalidParameterError, match="too coarse"):
        model.predict(np.zeros((2, 8)))
    with pytest.raises(InvalidParameterError, match=r"\(n_samples, s\)"):
        model.predict(np.zeros(32))
