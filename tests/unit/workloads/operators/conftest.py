"""Fixtures of the operator tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _optoys import make_toy


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def toy_1d() -> dict[str, np.ndarray]:
    x, y = make_toy(96, 32, 1)
    xt, yt = make_toy(32, 32, 2)
    return {"x": x, "y": y, "xt": xt, "yt": yt}
