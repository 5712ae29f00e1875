"""``scaleforge bench history|compare``: benchmark history and regression detection.

``history`` appends a benchmark's result (its last stdout line, from a file or
stdin) with the git commit and machine to a JSON-lines history file, or lists
the stored runs. ``compare A B`` tests, figure by figure, whether run set B
regressed against run set A (Mann-Whitney U with >= 3 samples a side, else a
bootstrap interval on the ratio of medians).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["DEFAULT_HISTORY", "app", "compare", "history"]

DEFAULT_HISTORY = Path(".scaleforge") / "bench-history.jsonl"

app = typer.Typer(
    help="Benchmark history and regression comparison.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_console = Console(width=140)

_HISTORY_OPTION = typer.Option(
    "--history", help=f"History file (JSON lines; default {DEFAULT_HISTORY} in the current directory)."
)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


@app.command()
def history(
    result: Annotated[
        Path | None,
        typer.Argument(
            help="File holding a benchmark's output ('-' or omitted: read stdin). Omit with --list."
        ),
    ] = None,
    history_file: Annotated[Path, _HISTORY_OPTION] = DEFAULT_HISTORY,
    label: Annotated[
        str | None, typer.Option("--label", help="A name for this run, usable in compare.")
    ] = None,
    commit: Annotated[str | None, typer.Option("--commit", help="Override the git commit recorded.")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List stored runs instead of appending.")] = False,
    bench: Annotated[str | None, typer.Option("--bench", help="Only this benchmark (with --list).")] = None,
) -> None:
    """Append a benchmark result to the history (or --list the stored runs)."""
    from scaleforge.errors import ScaleforgeError
    from scaleforge.monitor.regression import BenchHistory, parse_bench_output

    store = BenchHistory(history_file)
    try:
        if list_:
            table = Table("id", "time", "bench", "commit", "label", "figures")
            for rec in store.records(bench):
                table.add_row(
                    rec.get("id", ""),
                    rec.get("time", ""),
                    rec["bench"],
                    str(rec.get("commit") or "")[:12],
                    str(rec.get("label") or ""),
                    ", ".join(sorted(rec["metrics"])),
                )
            _console.print(table)
            return
        if result is None or str(result) == "-":
            text = sys.stdin.read()
        else:
            try:
                text = result.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise _fail(f"cannot read the benchmark output file {str(result)!r}: {exc}") from exc
        parsed = parse_bench_output(text)
        rec = store.append(parsed, commit=commit, label=label)
    except ScaleforgeError as exc:
        raise _fail(str(exc)) from exc
    _console.print(
        f"recorded {rec['bench']} run {rec['id']} (commit {str(rec['commit'] or 'unknown')[:12]}) "
        f"with {len(rec['metrics'])} figures in {history_file}"
    )


@app.command()
def compare(
    a: Annotated[str, typer.Argument(help="Baseline: run id, label, commit prefix, 'latest' or 'previous'.")],
    b: Annotated[str, typer.Argument(help="Candidate, same forms as A.")],
    history_file: Annotated[Path, _HISTORY_OPTION] = DEFAULT_HISTORY,
    bench: Annotated[str | None, typer.Option("--bench", help="Only this benchmark.")] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level.")] = 0.05,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    fail_on_regression: Annotated[
        bool, typer.Option("--fail-on-regression", help="Exit with status 1 if any figure regressed.")
    ] = False,
) -> None:
    """Say which figures of B regressed or improved against A, with a statistical test."""
    from scaleforge.errors import ScaleforgeError
    from scaleforge.monitor.regression import BenchHistory
    from scaleforge.monitor.regression import compare as compare_runs

    store = BenchHistory(history_file)
    try:
        runs_a = store.select(a, bench)
        runs_b = store.select(b, bench)
        results = compare_runs(runs_a, runs_b, alpha=alpha)
    except ScaleforgeError as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        colors = {"regressed": "red", "improved": "green", "changed": "yellow", "insufficient": "dim"}
        table = Table("bench", "figure", "A median", "B median", "B/A", "n", "test", "verdict")
        for r in results:
            if r.method == "mannwhitneyu":
                test = f"MWU p={r.p_value:.3g}"
            elif r.method == "bootstrap":
                test = f"boot CI [{r.ci_low:.3g}, {r.ci_high:.3g}]"
            else:
                test = "need >= 2 samples a side"
            color = colors.get(r.verdict, "")
            verdict = f"[{color}]{r.verdict}[/{color}]" if color else r.verdict
            table.add_row(
                r.bench,
                r.metric,
                f"{r.median_a:.4g}",
                f"{r.median_b:.4g}",
                f"{r.ratio:.3f}",
                f"{r.n_a}/{r.n_b}",
                test,
                verdict,
            )
        _console.print(table)
        if not results:
            _console.print("no figure is present in both run sets")
    if fail_on_regression and any(r.verdict == "regressed" for r in results):
        raise typer.Exit(code=1)
