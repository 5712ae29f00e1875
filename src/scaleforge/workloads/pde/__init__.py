"""PDE workload: verified finite elements, adjoint gradients, inverse problems and data generators.

Names are loaded lazily from their modules, so ``import scaleforge.workloads.pde``
stays cheap (scikit-fem, pyamg, zarr and matplotlib load only when used)::

    from scaleforge.workloads import pde

    data = pde.generate("darcy", n=1200, resolution=32)   # parallel + cached
    data.save("darcy32.npz")
    sol = pde.solve_poisson(pde.unit_square(64), kappa=1.0, f=1.0)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaleforge._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "AMGSolver": "scaleforge.workloads.pde.solvers",
    "AdaptiveResult": "scaleforge.workloads.pde.adaptive",
    "BLOCK_SIZE": "scaleforge.workloads.pde.datasets",
    "DATASETS": "scaleforge.workloads.pde.datasets",
    "DirectSolver": "scaleforge.workloads.pde.solvers",
    "FEMSolution": "scaleforge.workloads.pde.fem",
    "InverseProblem": "scaleforge.workloads.pde.inverse",
    "InverseResult": "scaleforge.workloads.pde.inverse",
    "LinearSolver": "scaleforge.workloads.pde.solvers",
    "MisfitGradient": "scaleforge.workloads.pde.adjoint",
    "P1Geometry": "scaleforge.workloads.pde.mesh",
    "PDEDataset": "scaleforge.workloads.pde.datasets",
    "PoissonProblem": "scaleforge.workloads.pde.fem",
    "SingularSystemError": "scaleforge.workloads.pde.solvers",
    "adaptive_solve": "scaleforge.workloads.pde.adaptive",
    "generate": "scaleforge.workloads.pde.datasets",
    "generate_to_zarr": "scaleforge.workloads.pde.datasets",
    "grf_1d": "scaleforge.workloads.pde.grf",
    "grf_2d": "scaleforge.workloads.pde.grf",
    "make_inverse_problem": "scaleforge.workloads.pde.inverse",
    "misfit_gradient": "scaleforge.workloads.pde.adjoint",
    "p1_geometry": "scaleforge.workloads.pde.mesh",
    "plot_all": "scaleforge.workloads.pde.plots",
    "prepare_system": "scaleforge.workloads.pde.solvers",
    "residual_estimator": "scaleforge.workloads.pde.adaptive",
    "run_verification": "scaleforge.workloads.pde.verify",
    "sample_burgers": "scaleforge.workloads.pde.datasets",
    "sample_darcy": "scaleforge.workloads.pde.datasets",
    "solve_burgers": "scaleforge.workloads.pde.burgers",
    "solve_darcy_fv": "scaleforge.workloads.pde.darcy",
    "solve_inverse": "scaleforge.workloads.pde.inverse",
    "solve_poisson": "scaleforge.workloads.pde.fem",
    "unit_square": "scaleforge.workloads.pde.mesh",
}

__all__ = [
    "BLOCK_SIZE",
    "DATASETS",
    "AMGSolver",
    "AdaptiveResult",
    "DirectSolver",
    "FEMSolution",
    "InverseProblem",
    "InverseResult",
    "LinearSolver",
    "MisfitGradient",
    "P1Geometry",
    "PDEDataset",
    "PoissonProblem",
    "SingularSystemError",
    "adaptive_solve",
    "generate",
    "generate_to_zarr",
    "grf_1d",
    "grf_2d",
    "make_inverse_problem",
    "misfit_gradient",
    "p1_geometry",
    "plot_all",
    "prepare_system",
    "residual_estimator",
    "run_verification",
    "sample_burgers",
    "sample_darcy",
    "solve_burgers",
    "solve_darcy_fv",
    "solve_inverse",
    "solve_poisson",
    "unit_square",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)


if TYPE_CHECKING:
    from scaleforge.workloads.pde.adaptive import AdaptiveResult, adaptive_solve, residual_estimator
    from scaleforge.workloads.pde.adjoint import MisfitGradient, misfit_gradient
    from scaleforge.workloads.pde.burgers import solve_burgers
    from scaleforge.workloads.pde.darcy import solve_darcy_fv
    from scaleforge.workloads.pde.datasets import (
        BLOCK_SIZE,
        DATASETS,
        PDEDataset,
        generate,
        generate_to_zarr,
        sample_burgers,
        sample_darcy,
    )
    from scaleforge.workloads.pde.fem import FEMSolution, PoissonProblem, solve_poisson
    from scaleforge.workloads.pde.grf import grf_1d, grf_2d
    from scaleforge.workloads.pde.inverse import (
        InverseProblem,
        InverseResult,
        make_inverse_problem,
        solve_inverse,
    )
    from scaleforge.workloads.pde.mesh import P1Geometry, p1_geometry, unit_square
    from scaleforge.workloads.pde.plots import plot_all
    from scaleforge.workloads.pde.solvers import (
        AMGSolver,
        DirectSolver,
        LinearSolver,
        SingularSystemError,
        prepare_system,
    )
    from scaleforge.workloads.pde.verify import run_verification
