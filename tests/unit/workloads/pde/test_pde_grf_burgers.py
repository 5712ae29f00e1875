"""GRF statistics and the ETDRK4 Burgers solver against closed forms and the Cole–Hopf solution."""

from __future__ import annotations

import numpy as np
import pytest

from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.pde.burgers import burgers_grid, solve_burgers
from scaleforge.workloads.pde.grf import grf_1d, grf_2d, grf_variance_1d
from scaleforge.workloads.pde.verify import burgers_check, burgers_cole_hopf_error


def test_grf_1d_variance_matches_closed_form(global_random_seed: int) -> None:
    rng = np.random.default_rng(global_random_seed)
    fields = grf_1d(rng, 64, size=4000)
    expected = grf_variance_1d(64)
    # 4000 x 64 correlated values: the sample variance is within a few percent
    assert fields.var() == pytest.approx(expected, rel=0.06)
    np.testing.assert_allclose(fields.mean(axis=1), 0.0, atol=1e-12)  # mean removed exactly


def test_grf_2d_is_deterministic_per_generator_seed() -> None:
    a = grf_2d(np.random.default_rng([3, 7]), 16)
    b = grf_2d(np.random.default_rng([3, 7]), 16)
    c = grf_2d(np.random.default_rng([3, 8]), 16)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("bad", [{"n": 3}, {"tau": 0.0}, {"sigma": -1.0}])
def test_grf_rejects_bad_parameters(bad: dict[str, float]) -> None:
    kwargs = {"n": 16, **bad}
    with pytest.raises(InvalidParameterError, match=next(iter(bad))):
        grf_1d(np.random.default_rng(0), **kwargs)  # type: ignore[arg-type]


def test_grf_rejects_global_state_rng() -> None:
    with pytest.raises(InvalidParameterError, match="default_rng"):
        grf_2d(np.random.RandomState(0), 8)  # type: ignore[arg-type]


def test_burgers_matches_cole_hopf_exact_solution() -> None:
    assert burgers_cole_hopf_error(128) < 1e-7


def test_burgers_self_convergence_n128_vs_n256() -> None:
    assert burgers_check(128, samples=4) <= 1e-3


def test_burgers_time_convergence_is_fourth_order() -> None:
    x = burgers_grid(64)
    u0 = 0.5 * np.sin(2 * np.pi * x)
    ref = solve_burgers(u0, nu=0.01, t_end=0.3, dt=1e-4)
    e1 = np.linalg.norm(solve_burgers(u0, nu=0.01, t_end=0.3, dt=0.02) - ref)
    e2 = np.linalg.norm(solve_burgers(u0, nu=0.01, t_end=0.3, dt=0.01) - ref)
    assert np.log2(e1 / e2) > 3.5


def test_burgers_batch_equals_single_solves() -> None:
    rng = np.random.default_rng(0)
    u0 = grf_1d(rng, 32, size=3)
    batch = solve_burgers(u0, t_end=0.1)
    for i in range(3):
        assert np.array_equal(batch[i], solve_burgers(u0[i], t_end=0.1))


def test_burgers_conserves_the_mean_and_dissipates_energy() -> None:
    u0 = grf_1d(np.random.default_rng(1), 128)
    u = solve_burgers(u0)
    assert abs(u.mean()) < 1e-12
    assert np.sum(u**2) < np.sum(u0**2)


@pytest.mark.parametrize(
    ("u0", "kwargs", "match"),
    [
        (np.zeros(7), {}, "even"),
        (np.full(8, np.nan), {}, "finite"),
        (np.zeros(8), {"nu": 0.0}, "nu"),
        (np.zeros(8), {"dt": -1.0}, "dt"),
    ],
)
def test_burgers_rejects_bad_input(u0: np.ndarray, kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        solve_burgers(u0, **kwargs)
