"""``scaleforge bench``, ``profile``, ``doctor`` and ``dashboard`` commands, driven through typer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from scaleforge.cli import bench, doctor, monitor
from scaleforge.testing.fixtures import free_port


@pytest.fixture
def app() -> typer.Typer:
    """The commands mounted the way scaleforge.cli mounts them."""
    root = typer.Typer(pretty_exceptions_enable=False)
    root.add_typer(bench.app, name="bench")
    root.command(name="dashboard")(monitor.dashboard)
    root.command(name="profile")(monitor.profile)
    root.command(name="doctor")(doctor.doctor)
    return root


runner = CliRunner()


def _result_line(bench_name: str, **metrics: object) -> str:
    return "some table\n" + json.dumps({"bench": bench_name, "metrics": metrics}) + "\n"


def test_bench_history_from_file_and_stdin_then_list(app: typer.Typer, tmp_path: Path) -> None:
    hist = tmp_path / "h.jsonl"
    out = tmp_path / "out.txt"
    out.write_text(_result_line("monitor", counter_inc_ns=250.0))
    r = runner.invoke(app, ["bench", "history", str(out), "--history", str(hist), "--label", "base"])
    assert r.exit_code == 0, r.output
    assert "recorded monitor run" in r.output
    r = runner.invoke(
        app,
        ["bench", "history", "--history", str(hist), "--commit", "feedbeef"],
        input=_result_line("monitor", counter_inc_ns=260.0),
    )
    assert r.exit_code == 0, r.output
    lines = [json.loads(line) for line in hist.read_text().splitlines()]
    assert [rec["label"] for rec in lines] == ["base", None]
    assert lines[1]["commit"] == "feedbeef"
    assert lines[0]["machine"]["cpu_count"] >= 1
    r = runner.invoke(app, ["bench", "history", "--list", "--history", str(hist)])
    assert r.exit_code == 0 and "counter_inc_ns" in r.output and "feedbeef" in r.output


def test_bench_compare_flags_the_regression(app: typer.Typer, tmp_path: Path) -> None:
    hist = tmp_path / "h.jsonl"
    for commit, values in (("aaaa0001", [300, 305, 298, 301, 299]), ("bbbb0002", [400, 405, 398, 401, 399])):
        for v in values:
            r = runner.invoke(
                app,
                ["bench", "history", "--history", str(hist), "--commit", commit],
                input=_result_line("monitor", counter_inc_ns=v, anomaly_recall=0.95),
            )
            assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["bench", "compare", "aaaa", "bbbb", "--history", str(hist), "--json"])
    assert r.exit_code == 0, r.output
    verdicts = {row["metric"]: row["verdict"] for row in json.loads(r.output)}
    assert verdicts == {"counter_inc_ns": "regressed", "anomaly_recall": "unchanged"}
    r = runner.invoke(
        app, ["bench", "compare", "previous", "latest", "--history", str(hist), "--fail-on-regression"]
    )
    assert r.exit_code == 1
    assert "regressed" in r.output and "MWU" in r.output


def test_bench_errors_are_clear(app: typer.Typer, tmp_path: Path) -> None:
    bad = tmp_path / "h.jsonl"
    bad.write_text("{oops\n")
    r = runner.invoke(app, ["bench", "compare", "a", "b", "--history", str(bad)])
    assert r.exit_code == 2
    assert "Line 1" in r.output and "not a valid record" in r.output
    r = runner.invoke(
        app, ["bench", "history", str(tmp_path / "missing.txt"), "--history", str(tmp_path / "x")]
    )
    assert r.exit_code == 2 and "cannot read" in r.output
    r = runner.invoke(app, ["bench", "history", "--history", str(tmp_path / "x")], input="no json here\n")
    assert r.exit_code == 2 and "not JSON" in r.output


def test_profile_command(app: typer.Typer, tmp_path: Path) -> None:
    script = tmp_path / "work.py"
    script.write_text("def spin():\n    return sum(range(200_000))\nspin()\n")
    r = runner.invoke(app, ["profile", str(script), "-o", str(tmp_path / "prof"), "--cprofile"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "prof").iterdir()) == [
        "work.html",
        "work.prof",
        "work.speedscope.json",
    ]
    r = runner.invoke(app, ["profile", str(tmp_path / "absent.py")])
    assert r.exit_code == 2
    assert "not an existing file" in r.output


def test_doctor_reports_sources_extras_and_unreachable_services(app: typer.Typer) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    env = {
        "SCALEFORGE_CACHE__DISK__MAX_BYTES": "5GB",
        "SCALEFORGE_CACHE__REDIS__URL": dead,
        "SCALEFORGE_CACHE__REDIS__ENABLED": "true",
    }
    r = runner.invoke(app, ["doctor", "--profile", "memory_optimized"], env=env)
    assert r.exit_code == 0, r.output
    rows = {line.split("│")[1].strip(): line for line in r.output.splitlines() if line.count("│") >= 3}
    assert "env" in rows["cache.disk.max_bytes"] and "5000000000" in rows["cache.disk.max_bytes"]
    assert "profile:memory_optimized" in rows["cache.memory.max_bytes"]
    assert "argument" in rows["profile"]
    assert "default" in rows["serve.port"]
    assert "Optional extras" in r.output and "monitor" in r.output
    assert "unreachable" in r.output
    assert "The Redis tier is enabled but" in r.output


def test_doctor_reads_a_config_file(app: typer.Typer, tmp_path: Path) -> None:
    cfg = tmp_path / "scaleforge.toml"
    cfg.write_text("[serve]\nport = 9100\n")
    r = runner.invoke(app, ["doctor", "--config", str(cfg), "--no-services"])
    assert r.exit_code == 0, r.output
    row = next(line for line in r.output.splitlines() if "serve.port" in line)
    assert "9100" in row and "file" in row


def test_dashboard_rejects_bad_scrape_url(app: typer.Typer) -> None:
    r = runner.invoke(app, ["dashboard", "--scrape", "localhost:8000/metrics", "--port", str(free_port())])
    assert r.exit_code == 2
    assert "http(s) URL" in r.output
