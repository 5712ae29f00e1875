"""End to end on real PDE data (tiny sizes): experiment, demo pipeline, active learning, CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import scaleforge as sf
from scaleforge.workloads import pde
from scaleforge.workloads.operators import experiment
from scaleforge.workloads.operators.active import darcy_pool, run_active_learning, simulate_darcy
from scaleforge.workloads.operators.training import TrainConfig

TINY_DARCY = experiment.Preset(
    24,
    6,
    16,
    {"width": 8, "modes": 4, "depth": 1, "hidden": 8, "padding": 0.125},
    TrainConfig(epochs=2, batch_size=6),
)


@pytest.fixture(autouse=True)
def _isolated_cache() -> Iterator[None]:
    # a private in-memory cache and thread workers: no user cache directory, no process pool
    with sf.config_context(cache=sf.MemoryTier(max_bytes="200MB"), executor="threads", progress=False):
        yield


@pytest.fixture
def tiny_presets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(experiment.PRESETS, ("darcy", True), TINY_DARCY)


def test_pool_and_simulation_reproduce_the_pde_generator() -> None:
    ds = pde.generate("darcy", 3, 16, seed=4, start=7, cache=False)
    pool = darcy_pool(3, 16, seed=4, start=7)
    np.testing.assert_array_equal(pool, ds.inputs)
    np.testing.assert_allclose(simulate_darcy(pool), ds.outputs, rtol=1e-12)


def test_demo_runs_end_to_end_and_reuses_cached_data(tmp_path: Path, tiny_presets: None) -> None:
    from scaleforge.workloads.operators.pipeline import run_demo

    first = run_demo(tmp_path / "demo", quick=True)
    assert not first["data_cached"]
    assert 0.0 < first["rel_l2"] < 1.0 and 0.0 <= first["cov90"] <= 1.0
    # the evaluation went to the monitor layer too
    from scaleforge.monitor.metrics import REGISTRY

    labels = {"workload": "operators", "dataset": "darcy", "metric": "rel_l2"}
    assert REGISTRY.get_sample_value(
        "scaleforge_eval_metric", {**labels, "head": "laplace"}
    ) == pytest.approx(first["rel_l2"])
    assert REGISTRY.get_sample_value("scaleforge_eval_metric", {**labels, "head": "gp"}) is not None
    summary = Path(first["summary"]).read_text()
    assert "LUNO-LA" in summary and "generated" in summary
    for key in ("model", "calibration", "prediction"):
        assert Path(first["files"][key]).stat().st_size > 0
    # the served answer is the saved model's own prediction for the same unseen field
    served = first["serve"]
    assert served["served"]
    from scaleforge.workloads.operators import ProbabilisticOperator

    field = pde.generate("darcy", 1, served["resolution"], seed=served["seed"], cache=False).inputs
    mean, std = ProbabilisticOperator.load(first["files"]["model"]).predict(field)
    centre = tuple(n // 2 for n in mean.shape[1:])
    np.testing.assert_allclose(served["centre_mean"], mean[0][centre], rtol=1e-5)
    np.testing.assert_allclose(served["centre_std"], std[0][centre], rtol=1e-5)
    second = run_demo(tmp_path / "demo", quick=True, serve=False)
    assert second["data_cached"]
    assert "reused from the cache" in Path(second["summary"]).read_text()


def test_active_learning_tiny_run() -> None:
    result = run_active_learning(
        pool_size=30,
        initial=8,
        batch=6,
        rounds=2,
        resolution=16,
        n_test=6,
        model_params={"width": 8, "modes": 4, "depth": 1, "hidden": 8},
        training=TrainConfig(epochs=2, batch_size=4),
    )
    assert result.labels == [8, 14, 20]
    assert set(result.errors) == {"variance", "random"}
    assert all(np.isfinite(e) and e > 0 for errs in result.errors.values() for e in errs)
    assert result.ratio == pytest.approx(result.errors["variance"][-1] / result.errors["random"][-1])
    with pytest.raises(sf.ScaleforgeError, match="pool_size >= initial"):
        run_active_learning(pool_size=10, initial=8, batch=6, rounds=2)


def test_cli_train_and_evaluate(tmp_path: Path, tiny_presets: None) -> None:
    from scaleforge.cli.operators import app

    runner = CliRunner()
    out = tmp_path / "run"
    res = runner.invoke(
        app,
        [
            "train",
            "darcy",
            "--quick",
            "--head",
            "gaussian",
            "--epochs",
            "1",
            "--no-baselines",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    payload = json.loads(res.output.strip().splitlines()[-1])
    assert payload["head"] == "gaussian" and payload["epochs_run"] == 1
    assert (out / "model.sfop").is_file() and (out / "darcy-maps.png").is_file()
    res = runner.invoke(app, ["evaluate", str(out / "model.sfop"), "--n-test", "4", "--json"])
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.output.strip().splitlines()[-1])["metrics"]
    assert {"rel_l2", "nll", "crps", "cov90", "energy"} <= set(metrics)
    res = runner.invoke(app, ["train", "heat", "--quick"])
    assert res.exit_code != 0 and "heat" in res.output
    res = runner.invoke(app, ["train", "darcy", "--head", "dropout"])
    assert res.exit_code != 0


def test_optuna_search_runs_trials_through_map(toy_1d: dict[str, np.ndarray]) -> None:
    from scaleforge.workloads.operators.tuning import search

    out = search(
        toy_1d["x"][:40],
        toy_1d["y"][:40],
        toy_1d["xt"][:8],
        toy_1d["yt"][:8],
        head="gaussian",
        n_trials=3,
        parallel=2,
        widths=(4, 8),
        max_modes=6,
        base={"depth": 1, "hidden": 8},
        training=TrainConfig(epochs=2, batch_size=8),
    )
    assert len(out["trials"]) == 3
    assert out["best_value"] == min(t["value"] for t in out["trials"])
    assert out["best_params"]["width"] in (4, 8) and 2 <= out["best_params"]["modes"] <= 6
