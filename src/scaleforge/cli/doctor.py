"""``scaleforge doctor``: effective settings and where each came from, extras, services, hints.

Sources of a setting, in order of precedence: ``argument`` (a command-line
option), ``env`` (``SCALEFORGE_*``), ``file`` (``scaleforge.toml`` or
``$SCALEFORGE_CONFIG``), ``profile:<name>``, ``default``.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["EXTRAS", "doctor", "settings_provenance"]

_console = Console(width=140)

# extra -> modules it installs (checked with importlib.util.find_spec: nothing heavy is imported)
EXTRAS: dict[str, tuple[str, ...]] = {
    "redis": ("redis", "hiredis"),
    "ray": ("ray",),
    "dask": ("dask", "distributed"),
    "torch": ("torch",),
    "serve": ("fastapi", "uvicorn", "httpx", "msgpack"),
    "monitor": ("pyinstrument", "fastapi", "uvicorn", "pynvml"),
    "jobs": ("sqlalchemy", "alembic", "psycopg", "submitit"),
    "workloads": (
        "sklearn",
        "skfem",
        "pyamg",
        "matplotlib",
        "zarr",
        "gymnasium",
        "stable_baselines3",
        "river",
        "tslearn",
        "pandas",
    ),
}


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted names of a settings model (dict-valued fields such as tokens stay leaves) or a plain dict."""
    from pydantic import BaseModel

    if isinstance(obj, BaseModel):
        items: Mapping[str, Any] = {name: getattr(obj, name) for name in type(obj).model_fields}
    elif isinstance(obj, Mapping) and obj and not prefix.endswith("tokens."):
        items = obj
    else:
        return {prefix[:-1]: obj} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in items.items():
        if isinstance(obj, BaseModel) and isinstance(value, Mapping):
            out[f"{prefix}{key}"] = value  # a dict-valued setting is one value
        else:
            out.update(_flatten(value, f"{prefix}{key}."))
    return out


def _display(value: Any) -> str:
    from pydantic import SecretStr

    if isinstance(value, SecretStr):
        return "********" if value.get_secret_value() else ""
    if isinstance(value, Mapping) and any(isinstance(v, SecretStr) for v in value.values()):
        return "{" + ", ".join(f"{k}: ********" for k in value) + "}"
    return str(value)


def settings_provenance(
    settings: Any, *, environ: Mapping[str, str], config_file: Path | None, arguments: Mapping[str, Any]
) -> list[tuple[str, str, str]]:
    """Return ``(dotted name, value, source)`` for every setting.

    Parameters
    ----------
    settings : scaleforge.Settings
        The effective settings.
    environ : mapping
        The environment they were read from.
    config_file : pathlib.Path or None
        The TOML file they were read from.
    arguments : mapping
        Top-level overrides given on the command line.

    Returns
    -------
    list of (str, str, str)
    """
    from scaleforge.settings import PROFILES, Settings

    effective = _flatten(settings)
    defaults = _flatten(Settings.model_construct())
    profile_keys = set(_flatten(PROFILES.get(settings.profile, {})))
    env_keys = set()
    for key in environ:
        if key.startswith("SCALEFORGE_") and key not in ("SCALEFORGE_CONFIG",):
            env_keys.add(key[len("SCALEFORGE_") :].lower().replace("__", "."))
    file_keys: set[str] = set()
    if config_file is not None and config_file.is_file():
        with config_file.open("rb") as fh:
            file_keys = set(_flatten(tomllib.load(fh)))
    arg_keys = set(_flatten(dict(arguments)))
    rows = []
    for name, value in sorted(effective.items()):

        def hit(keys: set[str], name: str = name) -> bool:
            return any(name == k or name.startswith(k + ".") for k in keys)

        if hit(arg_keys):
            source = "argument"
        elif hit(env_keys):
            source = "env"
        elif hit(file_keys):
            source = "file"
        elif name in profile_keys or hit(profile_keys):
            source = f"profile:{settings.profile}"
        elif value != defaults.get(name, value):
            source = "env/file"
        else:
            source = "default"
        rows.append((name, _display(value), source))
    return rows


def _check_redis(url: str) -> tuple[bool, str]:
    try:
        import redis
    except ImportError:
        return False, "redis-py not installed: pip install 'scaleforge[redis]'"
    try:
        client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            client.ping()
            version = client.info("server").get("redis_version", "?")
        finally:
            client.close()
    except Exception as exc:
        return False, f"unreachable ({type(exc).__name__}: {exc})"
    return True, f"reachable, Redis {version}"


def _check_database(url: str) -> tuple[bool, str]:
    if url.startswith("sqlite"):
        return True, "embedded SQLite"
    try:
        import sqlalchemy as sa
    except ImportError:
        return False, "SQLAlchemy not installed: pip install 'scaleforge[jobs]'"
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 2} if "postgres" in url else {})
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("select 1"))
        finally:
            engine.dispose()
    except Exception as exc:
        return False, f"unreachable ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    return True, "reachable"


def _check_tcp(address: str) -> tuple[bool, str]:
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    if parsed.hostname is None or parsed.port is None:
        return False, f"cannot parse host:port from {address!r}"
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=1.0):
            return True, "port open"
    except OSError as exc:
        return False, f"unreachable ({exc})"


def _redact_url(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(parsed.password, "****")
    return url


def doctor(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="A scaleforge.toml (default: $SCALEFORGE_CONFIG or ./scaleforge.toml)."
        ),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option("--profile", help="balanced, high_performance, memory_optimized, distributed."),
    ] = None,
    services: Annotated[
        bool, typer.Option("--services/--no-services", help="Probe Redis/PostgreSQL.")
    ] = True,
) -> None:
    """Print effective settings and their sources, installed extras, reachable services and recommendations."""
    from scaleforge.errors import ScaleforgeError
    from scaleforge.monitor.recommend import recommend
    from scaleforge.monitor.sampler import GpuProbe, sample_system
    from scaleforge.settings import load_settings

    arguments: dict[str, Any] = {"profile": profile} if profile else {}
    try:
        settings = load_settings(config, **arguments)
    except ScaleforgeError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2) from exc
    if config is None:
        env_file = os.environ.get("SCALEFORGE_CONFIG")
        config = (
            Path(env_file)
            if env_file
            else (Path("scaleforge.toml") if Path("scaleforge.toml").is_file() else None)
        )

    _console.rule("[bold]Settings")
    _console.print(f"config file: {config if config is not None else 'none'}; profile: {settings.profile}")
    table = Table("setting", "value", "source")
    for name, value, source in settings_provenance(
        settings, environ=os.environ, config_file=config, arguments=arguments
    ):
        style = "" if source == "default" else "bold"
        table.add_row(name, _redact_url(value), source, style=style)
    _console.print(table)

    _console.rule("[bold]Optional extras")
    extras = Table("extra", "installed", "missing modules")
    incomplete = []
    for extra, modules in EXTRAS.items():
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing:
            incomplete.append(extra)
        extras.add_row(
            extra,
            "yes" if not missing else ("partly" if len(missing) < len(modules) else "no"),
            ", ".join(missing) or "-",
        )
    _console.print(extras)
    if incomplete:
        _console.print(f"install the missing extras with: pip install 'scaleforge[{','.join(incomplete)}]'")

    _console.rule("[bold]Services")
    svc = Table("service", "address", "status")
    problems: list[str] = []
    redis_cfg = settings.cache.redis
    if services:
        ok, msg = _check_redis(redis_cfg.url)
        svc.add_row(
            "Redis (cache)",
            _redact_url(redis_cfg.url),
            ("[green]" if ok else "[red]" if redis_cfg.enabled else "[yellow]")
            + msg
            + ("" if redis_cfg.enabled else " (tier disabled in settings)"),
        )
        if redis_cfg.enabled and not ok:
            problems.append(
                f"The Redis tier is enabled but {redis_cfg.url} is unreachable: start Redis or set "
                "cache.redis.enabled=false (the cache will count misses until it is back)."
            )
        ok, msg = _check_database(settings.jobs.database_url)
        svc.add_row(
            "Job database", _redact_url(settings.jobs.database_url), ("[green]" if ok else "[red]") + msg
        )
        if not ok:
            problems.append(f"The job database {settings.jobs.database_url!r} is unreachable: {msg}.")
        if settings.compute.address:
            ok, msg = _check_tcp(settings.compute.address)
            svc.add_row(
                f"{settings.compute.executor} cluster",
                settings.compute.address,
                ("[green]" if ok else "[red]") + msg,
            )
    gpu = GpuProbe()
    svc.add_row(
        "GPU (NVML)", "-", f"{gpu.count} device(s)" if gpu.available else f"none: {gpu.reason}; CPU fallback"
    )
    gpu.close()
    _console.print(svc)

    _console.rule("[bold]Recommendations")
    sample = sample_system()
    hints = [f"{r.title}. {r.detail} (evidence: {r.evidence})" for r in recommend({"figures": sample})]
    total = sample.get("memory_total_bytes", 0.0)
    mem_tier = settings.cache.memory
    if mem_tier.enabled and total and mem_tier.max_bytes > 0.5 * total:
        hints.append(
            f"cache.memory.max_bytes={mem_tier.max_bytes:,} is more than half of this machine's memory "
            f"({total:,.0f} bytes): lower it or use the 'memory_optimized' profile."
        )
    disk = settings.cache.disk
    if disk.enabled:
        try:
            import shutil

            anchor = next((p for p in [disk.path, *disk.path.parents] if p.exists()), Path("/"))
            free = shutil.disk_usage(anchor).free
            if free < disk.max_bytes:
                hints.append(
                    f"cache.disk.max_bytes={disk.max_bytes:,} exceeds the free space at {anchor} ({free:,} bytes): "
                    "lower it so the disk tier evicts before the disk fills."
                )
        except OSError:
            pass
    hints.extend(problems)
    if not hints:
        _console.print("[green]nothing to recommend[/green]")
    for hint in hints:
        _console.print(f"- {hint}")
