"""``scaleforge habitat eval|plot|train`` through typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from scaleforge.cli.habitat import app

runner = CliRunner()


def test_eval_json() -> None:
    result = runner.invoke(
        app,
        [
            "eval",
            "--policy",
            "pid",
            "--scenarios",
            "nominal,slow_leak",
            "--episodes",
            "2",
            "--json",
            "--no-cache",
            "--executor",
            "threads",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output.strip().splitlines()[-1])
    assert set(data["scenarios"]) == {"nominal", "slow_leak"}
    assert data["scenarios"]["nominal"]["survival_rate"] == 1.0
    assert data["scenarios"]["slow_leak"]["hours_out_of_limits"]["pressure"] > 0


def test_eval_table_and_bad_input() -> None:
    result = runner.invoke(
        app,
        [
            "eval",
            "--policy",
            "random",
            "--scenarios",
            "nominal",
            "--episodes",
            "1",
            "--no-cache",
            "--executor",
            "threads",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "nominal" in result.output
    bad = runner.invoke(app, ["eval", "--episodes", "0"])
    assert bad.exit_code != 0


def test_plot_writes_png(tmp_path: Path) -> None:
    out = tmp_path / "episode.png"
    result = runner.invoke(
        app, ["plot", "--policy", "pid", "--scenario", "dust_storm", "--seed", "1", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_rejects_unknown_algorithm(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--algo", "dqn", "--steps", "10", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "'algo'" in str(result.exception)
