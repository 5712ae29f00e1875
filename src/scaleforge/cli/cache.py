"""``scaleforge cache stats|clear``: inspect and empty the configured cache tiers.

The tiers are those the settings configure (``default_cache``): memory and disk
by default, Redis when enabled. ``stats`` prints one row per tier; ``clear``
empties one tier or all of them after a confirmation (``--yes`` skips it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["app", "clear", "stats"]

app = typer.Typer(
    help="Inspect and clear the cache tiers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_TIER_CHOICES = ("memory", "disk", "redis", "all")
_COLUMNS = ("entries", "bytes", "max_bytes", "hits", "misses", "errors")

_CONFIG_OPTION = typer.Option(
    None,
    "--config",
    help="A scaleforge.toml settings file (default: $SCALEFORGE_CONFIG or ./scaleforge.toml).",
)
_PROFILE_OPTION = typer.Option(
    None, "--profile", help="Settings profile: balanced, high_performance, memory_optimized, distributed."
)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


def _build_cache(config: Path | None, profile: str | None) -> Any:
    from scaleforge.cache.registry import default_cache
    from scaleforge.errors import ScaleforgeError
    from scaleforge.settings import load_settings

    try:
        overrides = {"profile": profile} if profile else {}
        settings = load_settings(config, **overrides)
        return default_cache(settings)
    except ScaleforgeError as exc:
        raise _fail(str(exc)) from exc


def _tiers(cache: Any) -> list[Any]:
    tiers = getattr(cache, "tiers", None)
    return list(tiers) if tiers is not None else [cache]


def _row(tier: Any) -> dict[str, Any]:
    try:
        stats = tier.stats().as_dict()
    except Exception as exc:  # a broken backend is reported, not raised
        return {"tier": getattr(tier, "name", type(tier).__name__), "error": repr(exc)}
    row = {"tier": stats.get("name", getattr(tier, "name", "?"))}
    row.update({column: stats.get(column) for column in _COLUMNS})
    row["hit_rate"] = stats.get("hit_rate")
    return row


@app.command()
def stats(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    config: Path | None = _CONFIG_OPTION,
    profile: str | None = _PROFILE_OPTION,
) -> None:
    """Show entries, bytes, hits, misses and errors per cache tier."""
    cache = _build_cache(config, profile)
    try:
        rows = [_row(tier) for tier in _tiers(cache)]
    finally:
        cache.close()
    if as_json:
        typer.echo(json.dumps({"tiers": rows}, indent=2, default=str))
        return
    table = Table(title="scaleforge cache")
    table.add_column("tier")
    for column in _COLUMNS:
        table.add_column(column.replace("_", " "), justify="right")
    for row in rows:
        if "error" in row:
            table.add_row(row["tier"], f"[red]{row['error']}[/red]", *[""] * (len(_COLUMNS) - 1))
            continue
        cells = []
        for column in _COLUMNS:
            value = row[column]
            if value is None or (column == "entries" and value == -1):
                cells.append("?")
            elif isinstance(value, int) and column.endswith("bytes"):
                cells.append(f"{value:,}")
            else:
                cells.append(str(value))
        table.add_row(row["tier"], *cells)
    Console().print(table)


@app.command()
def clear(
    tier: str = typer.Option("all", "--tier", help="Which tier to empty: memory, disk, redis or all."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    config: Path | None = _CONFIG_OPTION,
    profile: str | None = _PROFILE_OPTION,
) -> None:
    """Remove every entry of one cache tier, or of all of them."""
    if tier not in _TIER_CHOICES:
        raise _fail(f"The '--tier' option must be one of {', '.join(_TIER_CHOICES)}. Got {tier!r} instead.")
    cache = _build_cache(config, profile)
    try:
        available = {getattr(t, "name", ""): t for t in _tiers(cache)}
        if tier == "all":
            chosen = list(available.values())
        elif tier in available:
            chosen = [available[tier]]
        else:
            enabled = ", ".join(sorted(available)) or "none"
            raise _fail(
                f"The {tier} tier is not enabled in the settings (enabled tiers: {enabled}). Enable it, e.g. "
                f"SCALEFORGE_CACHE__{tier.upper()}__ENABLED=true, or pick another --tier."
            )
        names = ", ".join(getattr(t, "name", "?") for t in chosen)
        if not yes and not typer.confirm(f"Remove every entry of the {names} tier(s)?"):
            typer.echo("Nothing removed.")
            raise typer.Exit(code=1)
        failed = []
        for t in chosen:
            try:
                t.clear()
            except Exception as exc:
                failed.append(f"{getattr(t, 'name', '?')}: {exc}")
        if failed:
            raise _fail("could not clear " + "; ".join(failed))
        typer.echo(f"Cleared: {names}.")
    finally:
        cache.close()
