"""One ``Settings`` object, named profiles, and temporary overrides.

Settings are read at the edge (the CLI, a server start, or the first call that
needs them) from, in order of precedence:

1. keyword arguments to :class:`Settings` or :func:`load_settings`,
2. ``SCALEFORGE_*`` environment variables (nested with ``__``, e.g.
   ``SCALEFORGE_CACHE__DISK__MAX_BYTES=20GB``),
3. a TOML file (``SCALEFORGE_CONFIG`` or ``./scaleforge.toml``),
4. the chosen profile's defaults (``balanced``, ``high_performance``,
   ``memory_optimized``, ``distributed``),
5. the field defaults below.

Inside library code the value of one knob is resolved by :func:`resolve`:
argument > :func:`config_context` > settings > default.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from scaleforge._validation import parse_bytes
from scaleforge.errors import ConfigError, InvalidParameterError

__all__ = [
    "PROFILES",
    "CacheSettings",
    "ComputeSettings",
    "DiskTierSettings",
    "JobsSettings",
    "MemoryTierSettings",
    "MonitorSettings",
    "RedisTierSettings",
    "ServeSettings",
    "Settings",
    "SlurmSettings",
    "config_context",
    "context_value",
    "get_settings",
    "load_settings",
    "resolve",
    "set_settings",
]

ProfileName = Literal["balanced", "high_performance", "memory_optimized", "distributed"]


def _default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("scaleforge"))


def _default_config_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("scaleforge"))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class _ByteBudget(_Section):
    max_bytes: int

    @field_validator("max_bytes", mode="before")
    @classmethod
    def _parse_size(cls, v: Any) -> int:
        try:
            return parse_bytes(v)
        except InvalidParameterError as exc:
            raise ValueError(str(exc)) from exc


class MemoryTierSettings(_ByteBudget):
    """The in-process LRU tier."""

    enabled: bool = True
    max_bytes: int = 512 * 10**6


class DiskTierSettings(_ByteBudget):
    """The local disk tier."""

    enabled: bool = True
    path: Path = Field(default_factory=lambda: _default_cache_dir() / "cache")
    max_bytes: int = 10 * 10**9
    fsync: bool = False


class RedisTierSettings(_ByteBudget):
    """The shared Redis tier (off unless the ``distributed`` profile or ``enabled``)."""

    enabled: bool = False
    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "sf:"
    ttl_s: float | None = None
    max_bytes: int = 512 * 10**6  # largest single value sent to Redis
    socket_timeout_s: float = 5.0
    breaker_cooldown_s: float = 5.0


class CacheSettings(_Section):
    """Cache tiers, compression and signing."""

    enabled: bool = True
    memory: MemoryTierSettings = Field(default_factory=MemoryTierSettings)
    disk: DiskTierSettings = Field(default_factory=DiskTierSettings)
    redis: RedisTierSettings = Field(default_factory=RedisTierSettings)
    compression: Literal["none", "lz4", "zstd", "auto"] = "auto"
    write_policy: Literal["through", "back_to_fastest"] = "through"
    hmac_key: SecretStr | None = None
    key_file: Path = Field(default_factory=lambda: _default_config_dir() / "hmac.key")


class SlurmSettings(_Section):
    """The ``slurm`` executor (submitit): read when ``SlurmExecutor`` arguments are omitted."""

    partition: str | None = None
    walltime_min: int = 60
    folder: Path | None = None  # default: <jobs.result_dir>/../submitit
    max_requeues: int = 3
    cluster: Literal["auto", "slurm", "local", "debug"] = "auto"


class ComputeSettings(_Section):
    """Executors and ``map`` defaults."""

    executor: str = "processes"
    address: str | None = None
    max_workers: int | None = None
    min_workers: int = 0
    start_method: Literal["fork", "forkserver", "spawn"] | None = None
    progress: bool | None = None
    shared_arg_min_bytes: int = 1 * 10**6
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)


class ServeSettings(_Section):
    """The model server."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch_size: int = 64
    max_wait_s: float = 0.005
    max_queue: int = 1024
    request_timeout_s: float = 30.0
    tokens: dict[str, SecretStr] = Field(default_factory=dict)
    model_dir: Path = Field(default_factory=lambda: Path("models"))


class MonitorSettings(_Section):
    """Metrics, sampling and the dashboard."""

    enabled: bool = True
    sample_interval_s: float = 1.0
    store_path: Path | None = None
    multiprocess_dir: Path | None = None
    bench_history_path: Path = Field(default_factory=lambda: Path(".scaleforge") / "bench-history.jsonl")


class JobsSettings(_Section):
    """The job service and its database."""

    database_url: str = "sqlite:///scaleforge-jobs.db"
    pool_size: int = 5
    lease_s: float = 30.0
    max_attempts: int = 3
    result_dir: Path = Field(default_factory=lambda: _default_cache_dir() / "results")
    tokens: dict[str, SecretStr] = Field(default_factory=dict)
    #: Largest request body the service reads (413 above); accepts units ("1MB").
    max_body_bytes: int = 1_000_000
    #: Where the client and ``scaleforge jobs submit|status|...`` find the service.
    url: str = "http://127.0.0.1:8080"
    #: Bearer token of the client and CLI (``SCALEFORGE_JOBS__TOKEN``).
    token: SecretStr | None = None

    @field_validator("max_body_bytes", mode="before")
    @classmethod
    def _parse_body_size(cls, v: Any) -> int:
        try:
            return parse_bytes(v)
        except InvalidParameterError as exc:
            raise ValueError(str(exc)) from exc


PROFILES: dict[str, dict[str, Any]] = {
    "balanced": {},
    "high_performance": {
        "cache": {
            "memory": {"max_bytes": 4 * 10**9},
            "disk": {"max_bytes": 50 * 10**9},
            "compression": "lz4",
        },
    },
    "memory_optimized": {
        "cache": {"memory": {"max_bytes": 64 * 10**6}, "compression": "zstd"},
        "compute": {"max_workers": 1},
    },
    "distributed": {
        "cache": {
            "memory": {"max_bytes": 2 * 10**9},
            "disk": {"max_bytes": 100 * 10**9},
            "redis": {"enabled": True, "max_bytes": 1 * 10**9},
        },
    },
}

_CONFIG_FILE: contextvars.ContextVar[Path | None] = contextvars.ContextVar("_CONFIG_FILE", default=None)


def _deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class Settings(BaseSettings):
    """All of scaleforge's configuration.

    Parameters
    ----------
    profile : {"balanced", "high_performance", "memory_optimized", "distributed"}, default="balanced"
        Named defaults applied beneath every explicit value.
    cache, compute, serve, monitor, jobs : sections
        See :class:`CacheSettings` and friends.

    Examples
    --------
    >>> s = Settings(profile="distributed")
    >>> s.cache.redis.enabled
    True
    """

    model_config = SettingsConfigDict(
        env_prefix="SCALEFORGE_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    profile: ProfileName = "balanced"
    cache: CacheSettings = Field(default_factory=CacheSettings)
    compute: ComputeSettings = Field(default_factory=ComputeSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    #: Shortcuts for the two knobs users set most: ``SCALEFORGE_EXECUTOR=ray`` and
    #: ``SCALEFORGE_ADDRESS=ray://head:10001`` override ``compute.executor`` / ``compute.address``.
    executor: str | None = None
    address: str | None = None

    @model_validator(mode="after")
    def _apply_shortcuts(self) -> Settings:
        if self.executor is not None:
            self.compute.executor = self.executor
        if self.address is not None:
            self.compute.address = self.address
        return self

    @model_validator(mode="before")
    @classmethod
    def _apply_profile(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        name = data.get("profile", "balanced")
        if name not in PROFILES:
            raise ValueError(
                f"unknown profile {name!r}; choose one of {', '.join(PROFILES)} "
                "(SCALEFORGE_PROFILE or Settings(profile=...))"
            )
        return _deep_merge(PROFILES[name], data)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _CONFIG_FILE.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Read settings from arguments, the environment and a TOML file.

    Parameters
    ----------
    config_file : path-like, optional
        A TOML file. Defaults to ``$SCALEFORGE_CONFIG`` or ``./scaleforge.toml`` if present.
    **overrides
        Top-level fields (``profile=...``, ``cache={...}``) that beat every other source.

    Returns
    -------
    Settings

    Raises
    ------
    ConfigError
        If a value is invalid or the file cannot be read.
    """
    if config_file is None:
        env_file = os.environ.get("SCALEFORGE_CONFIG")
        if env_file:
            config_file = env_file
        elif Path("scaleforge.toml").is_file():
            config_file = "scaleforge.toml"
    path = Path(config_file) if config_file is not None else None
    if path is not None and not path.is_file():
        raise ConfigError(
            f"The settings file {str(path)!r} does not exist. Fix the path or unset SCALEFORGE_CONFIG."
        )
    token = _CONFIG_FILE.set(path)
    try:
        return Settings(**overrides)
    except Exception as exc:  # pydantic ValidationError or a TOML parse error
        raise ConfigError(f"Invalid scaleforge settings: {exc}") from exc
    finally:
        _CONFIG_FILE.reset(token)


_settings_lock = threading.Lock()
_current: Settings | None = None


def get_settings() -> Settings:
    """Return the process's settings, loading them on first use.

    Returns
    -------
    Settings
    """
    global _current
    if _current is None:
        with _settings_lock:
            if _current is None:
                _current = load_settings()
    return _current


def set_settings(settings: Settings | None) -> None:
    """Replace the process's settings (``None`` reloads them on next use).

    Parameters
    ----------
    settings : Settings or None
    """
    global _current
    if settings is not None and not isinstance(settings, Settings):
        raise InvalidParameterError(
            f"set_settings expects a scaleforge.Settings or None. Got {type(settings).__name__} instead."
        )
    with _settings_lock:
        _current = settings


# Knobs that config_context may override, with the Settings path each falls back to.
_CONTEXT_KEYS: dict[str, tuple[str, ...] | None] = {
    "executor": ("compute", "executor"),
    "address": ("compute", "address"),
    "max_workers": ("compute", "max_workers"),
    "progress": ("compute", "progress"),
    "cache": None,  # a Tier instance used by @cached when none was given
    "cache_enabled": ("cache", "enabled"),
    "metrics": None,  # a monitor registry, or False to disable recording
}
_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("scaleforge_config", default={})  # noqa: B039


@contextlib.contextmanager
def config_context(**overrides: Any) -> Iterator[None]:
    """Temporarily override configuration in this thread or task.

    Parameters
    ----------
    **overrides
        Any of ``executor``, ``address``, ``max_workers``, ``progress``,
        ``cache`` (a Tier), ``cache_enabled``, ``metrics``.

    Yields
    ------
    None

    Raises
    ------
    InvalidParameterError
        For an unknown key.

    Examples
    --------
    >>> with config_context(executor="threads"):
    ...     resolve("executor")
    'threads'
    """
    unknown = sorted(set(overrides) - set(_CONTEXT_KEYS))
    if unknown:
        raise InvalidParameterError(
            f"config_context got unknown option(s) {', '.join(map(repr, unknown))}. "
            f"Known options: {', '.join(sorted(_CONTEXT_KEYS))}."
        )
    token = _context.set({**_context.get(), **overrides})
    try:
        yield
    finally:
        _context.reset(token)


_MISSING: Any = object()


def context_value(name: str, default: Any = None) -> Any:
    """Return the innermost :func:`config_context` value of ``name``, or ``default``.

    Cheap (one context-variable read): meant for hot paths that must honour a
    temporary override without consulting the full settings.

    Parameters
    ----------
    name : str
        A key of :func:`config_context`.
    default : object, default=None
        Returned when no active context sets ``name``.

    Returns
    -------
    object
    """
    return _context.get().get(name, default)


def resolve(name: str, argument: Any = None, default: Any = _MISSING) -> Any:
    """Resolve one knob: argument > config_context > settings > default.

    Parameters
    ----------
    name : str
        A key of :func:`config_context`.
    argument : object, optional
        The value passed by the caller; ``None`` means "not given".
    default : object, optional
        Returned when nothing else sets the knob.

    Returns
    -------
    object
    """
    if argument is not None:
        return argument
    ctx = _context.get()
    if name in ctx:
        return ctx[name]
    path = _CONTEXT_KEYS.get(name)
    if path is not None:
        value: Any = get_settings()
        for part in path:
            value = getattr(value, part)
        if value is not None:
            return value
    return None if default is _MISSING else default
