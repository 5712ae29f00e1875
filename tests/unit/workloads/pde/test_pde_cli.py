"""``scaleforge pde generate|verify|plot`` through typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from scaleforge.cli.pde import app
from scaleforge.workloads.pde.datasets import PDEDataset, generate

runner = CliRunner()


def test_generate_writes_a_loadable_npz(tmp_path: Path) -> None:
    out = tmp_path / "darcy8.npz"
    result = runner.invoke(
        app,
        [
            "generate",
            "darcy",
            "--n",
            "6",
            "--resolution",
            "8",
            "--out",
            str(out),
            "--no-progress",
            "--no-cache",
        ],
    )
    assert result.exit_code == 0, result.output
    ds = PDEDataset.load(out)
    assert ds.inputs.shape == (6, 8, 8)
    assert np.array_equal(ds.outputs, generate("darcy", 6, 8, cache=False).outputs)


def test_generate_scale_mode_writes_zarr(tmp_path: Path) -> None:
    out = tmp_path / "b.zarr"
    result = runner.invoke(
        app,
        [
            "generate",
            "burgers",
            "--n",
            "20",
            "--resolution",
            "16",
            "--out",
            str(out),
            "--scale",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(PDEDataset.load(out)) == 20


def test_generate_unknown_name_fails_with_message(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "heat", "--n", "2", "--out", str(tmp_path / "x.npz")])
    assert result.exit_code != 0
    assert "darcy" in str(result.exception)


def test_verify_json_last_line_has_the_figures() -> None:
    result = runner.invoke(app, ["verify", "--json", "--quick"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["all_passed"] is True
    m = report["metrics"]
    assert m["p1_l2_rate"] >= 1.9 and m["p1_h1_rate"] >= 0.9
    assert m["adjoint_rel_error"] <= 1e-6
    assert m["inverse_kappa_rel_error"] <= 0.05
    assert m["burgers_rel_error"] <= 1e-3


def test_plot_writes_pngs(tmp_path: Path) -> None:
    result = runner.invoke(app, ["plot", "--out", str(tmp_path), "--quick"])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == ["burgers_sample.png", "convergence.png", "darcy_sample.png", "inverse.png"]
    for p in tmp_path.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
