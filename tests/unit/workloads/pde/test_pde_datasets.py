"""Data generators: determinism by (seed, index) across calls and processes, files, bad input, FV vs FEM."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.pde.darcy import solve_darcy_fv
from scaleforge.workloads.pde.datasets import (
    PDEDataset,
    generate,
    generate_to_zarr,
    sample_darcy,
    split_blocks,
)
from scaleforge.workloads.pde.verify import darcy_fem_check, darcy_recipe_check


def _child_sample(name: str, seed: int, index: int) -> tuple[bytes, bytes]:
    # threads: a process-pool worker must not start its own pool (it could not exit cleanly)
    ds = generate(name, 1, 16, seed=seed, start=index, cache=False, executor="threads")
    return ds.inputs.tobytes(), ds.outputs.tobytes()


@pytest.mark.parametrize("name", ["darcy", "burgers"])
def test_samples_depend_only_on_seed_and_index(name: str) -> None:
    full = generate(name, 40, 16, seed=5, cache=False)
    part = generate(name, 9, 16, seed=5, start=13, cache=False)
    assert np.array_equal(full.inputs[13:22], part.inputs)
    assert np.array_equal(full.outputs[13:22], part.outputs)
    other = generate(name, 9, 16, seed=6, start=13, cache=False)
    assert not np.allclose(other.inputs, part.inputs)


@pytest.mark.parametrize("name", ["darcy", "burgers"])
def test_samples_are_identical_in_another_process(name: str) -> None:
    here = generate(name, 3, 16, seed=2, start=30, cache=False)
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        results = list(pool.map(_child_sample, [name] * 3, [2] * 3, [32, 30, 31]))
    for row, index in zip(results, [32, 30, 31], strict=True):
        assert row[0] == here.inputs[index - 30].tobytes()
        assert row[1] == here.outputs[index - 30].tobytes()


def test_darcy_sample_follows_the_recipe() -> None:
    kappa, u = sample_darcy(0, 0, 32)
    assert set(np.unique(kappa)) == {3.0, 12.0}
    assert 0.2 < np.mean(kappa == 12.0) < 0.8
    assert u.min() > 0  # f = 1 > 0 with zero Dirichlet: maximum principle
    np.testing.assert_array_equal(u, solve_darcy_fv(kappa, 1.0))


def test_darcy_fv_agrees_with_fem_to_discretisation_error() -> None:
    check = darcy_fem_check((7, 15, 31))
    assert check["difference"][-1] < 0.01
    assert check["rate"] > 1.5  # the difference shrinks at second order


def test_darcy_fv_and_fem_converge_together_for_the_discontinuous_recipe_kappa() -> None:
    check = darcy_recipe_check((15, 31, 63))
    d = check["difference"]
    assert d[0] > d[1] > d[2]  # they approach each other as h -> 0
    assert d[2] < 0.05
    assert check["rate"] > 0.7  # first order with jumps in kappa


def test_fv_constant_kappa_scales_inversely() -> None:
    u1 = solve_darcy_fv(np.ones((12, 12)))
    u4 = solve_darcy_fv(np.full((12, 12), 4.0))
    np.testing.assert_allclose(u4, u1 / 4, rtol=1e-12)
    np.testing.assert_allclose(u1, u1.T, rtol=1e-12)  # symmetric problem, symmetric answer


@pytest.mark.parametrize("suffix", [".npz", ".zarr"])
def test_save_and_load_round_trip(tmp_path: Path, suffix: str) -> None:
    ds = generate("darcy", 5, 8, seed=1, cache=False)
    path = ds.save(tmp_path / f"d{suffix}")
    back = PDEDataset.load(path)
    assert back.name == "darcy" and len(back) == 5
    assert np.array_equal(back.inputs, ds.inputs)
    assert np.array_equal(back.outputs, ds.outputs)
    assert np.array_equal(back.grid, ds.grid)
    assert back.params == ds.params
    assert back.params["seed"] == 1


def test_generate_to_zarr_streams_the_same_samples(tmp_path: Path) -> None:
    path = generate_to_zarr("burgers", 50, tmp_path / "b.zarr", 32, seed=3, chunk_samples=20)
    streamed = PDEDataset.load(path)
    direct = generate("burgers", 50, 32, seed=3, cache=False)
    assert np.array_equal(streamed.inputs, direct.inputs)
    assert np.array_equal(streamed.outputs, direct.outputs)


def test_shapes_and_grid() -> None:
    d = generate("darcy", 2, cache=False)
    b = generate("burgers", 2, cache=False)
    assert d.inputs.shape == (2, 32, 32) and d.grid.shape == (32, 32, 2)
    assert b.inputs.shape == (2, 128) and b.grid.shape == (128,)
    np.testing.assert_allclose(d.grid[0, 0], [1 / 33, 1 / 33])
    assert b.params["nu"] == 0.02 and b.params["t_end"] == 0.5


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("heat", 2), {}, "name"),
        (("darcy", 2, 3), {}, "resolution"),
        (("darcy", 0), {}, "'n'"),
        (("burgers", 2, 33), {}, "even"),
        (("darcy", 2), {"viscosity": 1.0}, "viscosity"),
        (("darcy", 2), {"seed": -1}, "seed"),
        (("burgers", 2), {"nu": -0.1}, "nu"),
    ],
)
def test_bad_input_is_rejected(args: tuple[object, ...], kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        generate(*args, cache=False, **kwargs)  # type: ignore[arg-type]


def test_bad_kappa_for_fv_solver() -> None:
    with pytest.raises(InvalidParameterError, match="> 0"):
        solve_darcy_fv(np.zeros((8, 8)))
    with pytest.raises(InvalidParameterError, match="square"):
        solve_darcy_fv(np.ones((8, 9)))
    with pytest.raises(InvalidParameterError, match="s >= 4"):
        solve_darcy_fv(np.ones((3, 3)))


def test_split_blocks_are_aligned() -> None:
    assert split_blocks(0, 40, 16) == [(0, 16), (16, 32), (32, 40)]
    assert split_blocks(1200, 1232, 16) == [(1200, 1216), (1216, 1232)]
    assert split_blocks(0, 1200, 16) == split_blocks(0, 2000, 16)[:75]


def test_load_rejects_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="does not exist"):
        PDEDataset.load(tmp_path / "nope.npz")
    np.savez(tmp_path / "x.npz", a=np.zeros(3))
    with pytest.raises(InvalidParameterError, match="not a scaleforge"):
        PDEDataset.load(tmp_path / "x.npz")
