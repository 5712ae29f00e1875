"""Cluster report, balanced teams, PNG figures and the ``scaleforge cluster`` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.clustering import balanced_teams, cluster_report
from scaleforge.workloads.clustering.plots import plot_drift_timeline, plot_embedding

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_cluster_report_known_values() -> None:
    X = np.array([[60, 10, 10, 20], [50, 20, 10, 20], [10, 10, 70, 10]], dtype=float)
    report = cluster_report(X, np.array([1, 1, 0]))
    assert report.sizes == {0: 1, 1: 2}
    assert report.centroids[1] == {"red": 55.0, "yellow": 15.0, "green": 10.0, "blue": 20.0}
    assert report.dominant == {0: "green", 1: "red"}
    assert json.loads(json.dumps(report.to_dict()))["sizes"] == {"0": 1, "1": 2}
    assert "green" in report.to_text().splitlines()[1]
    with pytest.raises(InvalidParameterError, match=r"'labels'.*one label per row"):
        cluster_report(X, np.array([0, 1]))


@given(
    labels=st.lists(st.integers(0, 5), min_size=1, max_size=80),
    n_teams=st.integers(1, 9),
    seed=st.integers(0, 10),
)
def test_balanced_teams_spread_every_cluster(labels: list[int], n_teams: int, seed: int) -> None:
    y = np.array(labels)
    n_teams = min(n_teams, y.size)
    teams = balanced_teams(y, n_teams, random_state=seed)
    sizes = np.bincount(teams, minlength=n_teams)
    assert sizes.max() - sizes.min() <= 1
    for k in np.unique(y):
        per_team = np.bincount(teams[y == k], minlength=n_teams)
        assert per_team.max() - per_team.min() <= 1


def test_balanced_teams_bad_input() -> None:
    with pytest.raises(InvalidParameterError, match=r"'n_teams'.*Got 5"):
        balanced_teams(np.array([0, 1, 1]), 5)
    with pytest.raises(InvalidParameterError, match=r"'labels'"):
        balanced_teams(np.array([0.5, 1.0]), 2)


def test_plots_write_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    out = plot_embedding(
        rng.standard_normal((30, 3)),
        rng.integers(0, 3, 30),
        tmp_path / "a" / "emb.png",
        truth=rng.integers(0, 3, 30),
    )
    assert out.read_bytes()[:8] == PNG_MAGIC
    out = plot_drift_timeline(
        np.arange(500), rng.random(500), tmp_path / "drift.png", detections=[300], changes=[290]
    )
    assert out.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(InvalidParameterError, match=r"'embedding'"):
        plot_embedding(np.zeros((3, 2)), np.zeros(4, dtype=np.int64), tmp_path / "x.png")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_cli_run_profiles_json(runner: CliRunner, tmp_path: Path) -> None:
    from scaleforge.cli.cluster import app

    plot = tmp_path / "emb.png"
    result = runner.invoke(
        app,
        [
            "run",
            "--data",
            "profiles",
            "--method",
            "raw",
            "--n-series",
            "200",
            "--spread",
            "5",
            "--plot",
            str(plot),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert out["ari"] > 0.95 and out["oracle_ari"] > 0.95
    assert out["team_sizes"] == [50, 50, 50, 50]
    assert plot.read_bytes()[:8] == PNG_MAGIC


def test_cli_run_esn_on_ar2(runner: CliRunner, tmp_path: Path) -> None:
    from scaleforge.cli.cluster import app

    result = runner.invoke(
        app,
        [
            "run",
            "--data",
            "ar2",
            "--method",
            "esn",
            "--n-series",
            "80",
            "--length",
            "200",
            "--reservoir-size",
            "20",
            "--plot",
            str(tmp_path / "e.png"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "ari" in result.output
    bad = runner.invoke(app, ["run", "--data", "weather"])
    assert bad.exit_code != 0 and "weather" in bad.output


def test_cli_stream_reports_the_drift(runner: CliRunner, tmp_path: Path) -> None:
    from scaleforge.cli.cluster import app

    plot = tmp_path / "drift.png"
    result = runner.invoke(
        app, ["stream", "--n-samples", "2500", "--change-at", "1500", "--plot", str(plot), "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert [0 <= e["delay"] < 500 for e in out["events"]] == [True]
    assert plot.read_bytes()[:8] == PNG_MAGIC
