"""Adjoint gradient vs finite differences, inverse-problem recovery, adaptive refinement rates."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.pde.adaptive import adaptive_solve
from scaleforge.workloads.pde.adjoint import misfit_gradient
from scaleforge.workloads.pde.fem import PoissonProblem
from scaleforge.workloads.pde.inverse import make_inverse_problem, solve_inverse
from scaleforge.workloads.pde.mesh import unit_square
from scaleforge.workloads.pde.verify import adjoint_check


def test_adjoint_gradient_matches_central_differences(global_random_seed: int) -> None:
    assert adjoint_check(12, seed=global_random_seed) <= 1e-6


def test_adjoint_gradient_is_zero_at_noise_free_truth() -> None:
    inv = make_inverse_problem(16, cells=4, noise=0.0)
    kappa = inv.kappa_elements(inv.theta_true)  # type: ignore[arg-type]
    mg = misfit_gradient(inv.problem, kappa, inv.loads, inv.observations)
    assert mg.value < 1e-25
    assert np.max(np.abs(mg.gradient)) < 1e-12


def test_inverse_problem_recovers_kappa_with_one_percent_noise() -> None:
    inv = make_inverse_problem(32, cells=8, noise=0.01, seed=0, data_refinement=2)  # no inverse crime
    res = solve_inverse(inv, alpha=1e-4)
    assert res.relative_error is not None
    assert res.relative_error <= 0.05
    # the starting guess kappa = 1 is far from the truth: the fit did real work
    start = np.linalg.norm(1.0 - np.exp(inv.theta_true)) / np.linalg.norm(np.exp(inv.theta_true))  # type: ignore[arg-type]
    assert start > 5 * res.relative_error


def test_inverse_and_adjoint_bad_input() -> None:
    with pytest.raises(InvalidParameterError, match="multiple"):
        make_inverse_problem(30, cells=8)
    problem = PoissonProblem(unit_square(4), degree=2)
    with pytest.raises(InvalidParameterError, match="degree=1"):
        misfit_gradient(problem, 1.0, np.zeros((problem.n_dofs, 1)), np.zeros((problem.n_dofs, 1)))
    p1 = PoissonProblem(unit_square(4))
    with pytest.raises(InvalidParameterError, match="same shape"):
        misfit_gradient(p1, 1.0, np.zeros((p1.n_dofs, 2)), np.zeros((p1.n_dofs, 1)))


def _rate(history: list[dict[str, float]]) -> float:
    n = np.array([h["n_dofs"] for h in history])
    e = np.array([h["h1_error"] for h in history])
    return float(-np.polyfit(np.log(n), np.log(e), 1)[0])


def test_adaptive_refinement_recovers_optimal_rate_on_lshape() -> None:
    adaptive = adaptive_solve(steps=10)
    uniform = adaptive_solve(steps=4, uniform=True)
    # energy-norm error vs unknowns: N^-1/2 with adaptivity, N^-1/3 (corner singularity) without
    assert _rate(adaptive.history[3:]) > 0.45
    assert _rate(uniform.history[1:]) < 0.4
    est = [h["estimator"] for h in adaptive.history]
    assert all(b < a for a, b in itertools.pairwise(est))
    # the estimator is reliable and efficient: within a constant of the true error
    ratio = np.array(est) / np.array([h["h1_error"] for h in adaptive.history])
    assert ratio.min() > 0.5 and ratio.max() < 10
