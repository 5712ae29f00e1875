"""P1/P2 finite elements against manufactured solutions, scikit-fem, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from scaleforge.errors import InvalidParameterError, ScaleforgeError
from scaleforge.workloads.pde.fem import PoissonProblem, solve_poisson
from scaleforge.workloads.pde.mesh import p1_geometry, unit_square
from scaleforge.workloads.pde.solvers import (
    DIRECT_MAX_UNKNOWNS,
    AMGSolver,
    DirectSolver,
    SingularSystemError,
    prepare_system,
    select_solver,
)
from scaleforge.workloads.pde.verify import convergence_study


def test_p1_manufactured_solution_rates() -> None:
    study = convergence_study((4, 8, 16, 32, 64), degree=1)  # 4 refinements
    assert study["l2_rate"] >= 1.9
    assert study["h1_rate"] >= 0.9
    assert np.all(np.diff(study["l2"]) < 0)


def test_p2_manufactured_solution_rates() -> None:
    study = convergence_study((4, 8, 16, 32), degree=2)
    assert study["l2_rate"] >= 2.8
    assert study["h1_rate"] >= 1.8


def test_p1_assembly_matches_scikit_fem() -> None:
    from skfem import Basis, BilinearForm, ElementTriP1, asm
    from skfem.helpers import dot, grad

    mesh = unit_square(7)
    kappa = np.random.default_rng(0).uniform(0.5, 2.0, mesh.t.shape[1])

    @BilinearForm
    def form(u, v, w):  # type: ignore[no-untyped-def]
        return w.kappa * dot(grad(u), grad(v))

    expected = asm(form, Basis(mesh, ElementTriP1()), kappa=kappa[:, None])
    ours = p1_geometry(mesh).stiffness(kappa)
    assert abs(ours - expected).max() < 1e-12


def test_quadratic_with_mixed_boundary_is_exact_for_p2() -> None:
    # u = x^2 + y, -lap u = -2; Dirichlet on x = 0, Neumann flux du/dn on the rest
    def exact(x, y):  # type: ignore[no-untyped-def]
        return x**2 + y

    def flux(x, y):  # type: ignore[no-untyped-def]
        return np.where(x > 1 - 1e-9, 2.0 * x, np.where(y < 1e-9, -1.0, 1.0))

    mesh = unit_square(4)
    sol = solve_poisson(mesh, 1.0, -2.0, degree=2, dirichlet=lambda x, y: x < 1e-9, g=exact, neumann=flux)
    loc = sol.problem.dof_locations
    np.testing.assert_allclose(sol.u, exact(loc[:, 0], loc[:, 1]), atol=1e-10)
    # P1 converges to it
    errs = []
    for n in (8, 16, 32):
        s1 = solve_poisson(unit_square(n), 1.0, -2.0, dirichlet=lambda x, y: x < 1e-9, g=exact, neumann=flux)
        errs.append(s1.errors(exact, lambda x, y: (2 * x, 1 + 0 * y))[0])
    assert errs[0] / errs[2] > 12  # ~ 16 for second order


def test_kappa_function_and_per_element_array_agree() -> None:
    mesh = unit_square(8)
    problem = PoissonProblem(mesh)
    fun = lambda x, y: 1.0 + x  # noqa: E731 - linear: the midpoint rule is exact
    arr = 1.0 + problem.geometry.centroids[:, 0]  # type: ignore[union-attr]
    np.testing.assert_allclose(problem.solve(fun).u, problem.solve(arr).u, rtol=1e-12)


def test_pure_neumann_is_reported_as_singular() -> None:
    with pytest.raises(SingularSystemError, match="Dirichlet"):
        solve_poisson(unit_square(4), 1.0, 1.0, dirichlet=None)
    k = p1_geometry(unit_square(4)).stiffness(np.ones(32))  # no BCs: constants in the kernel
    with pytest.raises(SingularSystemError, match="singular"):
        prepare_system(k, "direct", reuse=False)


@pytest.mark.parametrize(
    ("kappa", "match"),
    [(np.full(32, -1.0), "> 0"), (np.full(32, np.inf), "finite"), (np.ones(5), "shape"), (0.0, "> 0")],
)
def test_bad_kappa_is_rejected(kappa: object, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        solve_poisson(unit_square(4), kappa)  # type: ignore[arg-type]


def test_empty_mesh_and_bad_options_are_rejected() -> None:
    from skfem import MeshTri

    empty = MeshTri(np.zeros((2, 0)), np.zeros((3, 0), dtype=np.int64))
    with pytest.raises(InvalidParameterError, match="empty"):
        solve_poisson(empty)
    with pytest.raises(InvalidParameterError, match="degree"):
        PoissonProblem(unit_square(2), degree=3)
    with pytest.raises(InvalidParameterError, match="mesh"):
        PoissonProblem("square")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="f"):
        PoissonProblem(unit_square(2)).solve(1.0, np.ones(3))


def test_amg_and_direct_give_the_same_solution() -> None:
    mesh = unit_square(24)
    kappa = np.exp(np.random.default_rng(1).normal(size=mesh.t.shape[1]))
    direct = solve_poisson(mesh, kappa, method="direct")
    amg = solve_poisson(mesh, kappa, method="amg")
    assert direct.system.method == "direct"
    assert amg.system.method == "amg"
    np.testing.assert_allclose(amg.u, direct.u, rtol=1e-7, atol=1e-12)


def test_solver_selection_by_size() -> None:
    assert isinstance(select_solver(DIRECT_MAX_UNKNOWNS), DirectSolver)
    assert isinstance(select_solver(DIRECT_MAX_UNKNOWNS + 1), AMGSolver)
    assert isinstance(select_solver(10, "amg"), AMGSolver)
    with pytest.raises(InvalidParameterError, match="method"):
        select_solver(10, "cholesky")


def test_factorisation_is_reused_by_content() -> None:
    from scaleforge.workloads.pde import solvers

    a = sp.random(30, 30, density=0.2, random_state=0) + 30 * sp.identity(30)
    a = sp.csr_matrix(a + a.T)
    info0 = solvers.prepared_cache().cache_info()
    first = prepare_system(a)
    again = prepare_system(sp.csr_matrix(a.toarray()))  # another object, same content
    info1 = solvers.prepared_cache().cache_info()
    assert again is first  # the memory tier keeps the object itself: it is never serialised
    assert info1["hits"] - info0["hits"] == 1
    assert info1["misses"] - info0["misses"] == 1
    changed = a.copy()
    changed[0, 0] += 1.0
    assert prepare_system(changed) is not first  # one value differs: another key
    b = np.arange(30.0)
    np.testing.assert_allclose(a @ first.solve(b), b, rtol=1e-10)


def test_amg_non_convergence_is_a_scaleforge_error() -> None:
    mesh = unit_square(16)
    problem = PoissonProblem(mesh)
    k = problem.stiffness(np.ones(problem.n_elements))
    free = problem.free_dofs
    system = AMGSolver(rtol=1e-14, maxiter=1).prepare(k[free][:, free])
    with pytest.raises(ScaleforgeError, match="did not converge"):
        system.solve(np.ones(free.size))
