"""``scaleforge habitat``: evaluate controllers, train PPO/SAC, plot an episode."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["app", "eval_command", "plot", "train"]

app = typer.Typer(no_args_is_help=True, help="Lunar-habitat life-support control.")


def _fmt(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.3f}"


@app.command("eval")
def eval_command(
    policy: Annotated[str, typer.Option(help="random, pid, constant, or a trained model .zip.")] = "pid",
    scenarios: Annotated[str, typer.Option(help="'all' or a comma-separated list of scenarios.")] = "all",
    episodes: Annotated[int, typer.Option(help="Seeded episodes per scenario (seeds 0..N-1).")] = 50,
    executor: Annotated[str | None, typer.Option(help="Executor name (default from settings).")] = None,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Cache each episode.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = False,
) -> None:
    """Evaluate a policy over seeds x scenarios, with random and PID references in the same run."""
    from scaleforge.workloads.habitat.evaluate import evaluate

    if episodes < 1:
        raise typer.BadParameter(f"--episodes must be >= 1. Got {episodes}.")
    report = evaluate(policy, episodes, scenarios, executor=executor, cache=cache, progress=progress)
    if as_json:
        data = report.to_dict()
        data.pop("episodes")
        typer.echo(json.dumps(data))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"habitat evaluation: {report.policy} ({episodes} episodes per scenario)")
    for col in (
        "scenario",
        "survival",
        "return (mean ± std)",
        "h out O₂/CO₂/p/T",
        "energy kWh",
        "norm. score",
    ):
        table.add_column(col)
    for name, s in report.scenarios.items():
        h = s.hours_out_of_limits
        table.add_row(
            name,
            f"{s.survival_rate:.0%}",
            f"{s.mean_return:.1f} ± {s.std_return:.1f}",
            f"{h['o2']:.0f}/{h['co2']:.0f}/{h['pressure']:.0f}/{h['temperature']:.0f}",
            f"{s.energy_kwh:.0f}",
            _fmt(s.normalised_score),
        )
    console = Console()
    console.print(table)
    console.print(f"{report.cache_hits} episodes from the cache, {report.elapsed_s:.1f} s")


@app.command()
def train(
    algo: Annotated[str, typer.Option(help="ppo or sac.")] = "ppo",
    steps: Annotated[int, typer.Option(help="Total environment steps.")] = 300_000,
    scenario: Annotated[str, typer.Option(help="Training scenario.")] = "nominal",
    out: Annotated[Path, typer.Option(help="Output directory (checkpoints, final model, curve).")] = Path(
        "habitat-runs"
    ),
    seed: Annotated[int, typer.Option(help="Training seed.")] = 0,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Continue from the latest checkpoint.")
    ] = True,
    eval_every: Annotated[
        int, typer.Option(help="Steps between learning-curve evaluations (0: off).")
    ] = 20_000,
) -> None:
    """Train PPO or SAC (stable-baselines3) with checkpoints and resume."""
    from rich.console import Console

    from scaleforge.workloads.habitat.rl import train as _train

    result = _train(
        algo, steps, scenario=scenario, output_dir=out, seed=seed, resume=resume, eval_every=eval_every
    )
    console = Console()
    for step, ret, surv in result.curve:
        console.print(f"step {step:>8d}: eval return {ret:9.1f}, survival {surv:.0%}")
    console.print(f"model: {result.model_path} ({result.total_steps} steps, {result.elapsed_s:.0f} s)")
    if result.best_path is not None:
        console.print(f"best model of the learning curve: {result.best_path}")


@app.command()
def plot(
    policy: Annotated[str, typer.Option(help="random, pid, constant, or a trained model .zip.")] = "pid",
    scenario: Annotated[str, typer.Option(help="Scenario.")] = "dust_storm",
    seed: Annotated[int, typer.Option(help="Episode seed.")] = 0,
    out: Annotated[Path, typer.Option(help="Output PNG.")] = Path("habitat-episode.png"),
) -> None:
    """Plot one episode: atmosphere, power and actions, with limits shaded."""
    from scaleforge.workloads.habitat.evaluate import resolve_policy
    from scaleforge.workloads.habitat.plots import plot_episode

    path = plot_episode(resolve_policy(policy), out, seed=seed, scenario=scenario)
    typer.echo(f"wrote {path}")
