"""Profiling: ``scaleforge.profile`` as a context manager or decorator, and whole scripts.

pyinstrument samples the call stack and writes an HTML flame graph or a
speedscope JSON (open it at https://www.speedscope.app or with the
``speedscope`` CLI); cProfile writes deterministic ``pstats`` files. The output
format follows the file suffix::

    with sf.profile("train.html"):          # pyinstrument HTML
        train()

    @sf.profile("solve.speedscope.json")    # speedscope flame graph of every call
    def solve(...): ...

    with sf.profile("load.prof"):           # cProfile stats: python -m pstats load.prof
        load()

:func:`profile_script` runs a Python file under the profiler (``scaleforge
profile script.py``) and :func:`profile_call` profiles one call (used by
``map(profile=True)`` to profile a sampled task per worker).
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import logging
import os
import pstats
import runpy
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from scaleforge._validation import check_choice, check_number
from scaleforge.errors import InvalidParameterError, MissingDependencyError

__all__ = ["FORMATS", "ProfileResult", "profile", "profile_call", "profile_script"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

FORMATS = ("html", "speedscope", "pstats", "text")
_SUFFIXES = {
    ".html": "html",
    ".htm": "html",
    ".json": "speedscope",
    ".prof": "pstats",
    ".pstats": "pstats",
    ".txt": "text",
}


def _infer_format(path: Path | None, fmt: str | None, owner: str) -> str:
    if fmt is not None:
        return check_choice(fmt, "format", owner, FORMATS)
    if path is None:
        return "text"
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise InvalidParameterError(
            f"The 'path' parameter of {owner} ({str(path)!r}) has an unknown suffix; use .html (flame graph), "
            f".speedscope.json, .prof (cProfile) or .txt, or pass format= one of {', '.join(FORMATS)}."
        )
    return found


class ProfileResult:
    """What one profiling run produced.

    Attributes
    ----------
    path : pathlib.Path or None
        The file written.
    format : str
    text : str
        A plain-text summary (call tree or top functions).
    """

    def __init__(self, path: Path | None, fmt: str, text: str) -> None:
        self.path = path
        self.format = fmt
        self.text = text

    def __repr__(self) -> str:
        return f"ProfileResult(path={str(self.path)!r}, format={self.format!r})"


class _Run:
    """One active profiling session (pyinstrument or cProfile)."""

    def __init__(self, fmt: str, interval_s: float) -> None:
        self.fmt = fmt
        self._cprofile: cProfile.Profile | None = None
        self._pyi: Any = None
        if fmt == "pstats":
            self._cprofile = cProfile.Profile()
        else:
            try:
                from pyinstrument import Profiler
            except ImportError as exc:
                raise MissingDependencyError(
                    "Flame graphs need pyinstrument: pip install 'scaleforge[monitor]' "
                    "(or profile to a .prof file, which uses cProfile)."
                ) from exc
            self._pyi = Profiler(interval=interval_s, async_mode="disabled")

    def start(self) -> None:
        if self._cprofile is not None:
            self._cprofile.enable()
        else:
            self._pyi.start()

    def stop(self) -> None:
        if self._cprofile is not None:
            self._cprofile.disable()
        else:
            self._pyi.stop()

    def write(self, path: Path | None) -> ProfileResult:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        if self._cprofile is not None:
            buf = io.StringIO()
            stats = pstats.Stats(self._cprofile, stream=buf)
            stats.sort_stats("cumulative").print_stats(25)
            if path is not None:
                stats.dump_stats(str(path))
            return ProfileResult(path, self.fmt, buf.getvalue())
        from pyinstrument.renderers import SpeedscopeRenderer

        text = self._pyi.output_text(unicode=True, color=False)
        if path is not None:
            if self.fmt == "html":
                path.write_text(self._pyi.output_html(), encoding="utf-8")
            elif self.fmt == "speedscope":
                path.write_text(self._pyi.output(renderer=SpeedscopeRenderer()), encoding="utf-8")
            else:
                path.write_text(text, encoding="utf-8")
        return ProfileResult(path, self.fmt, text)


class profile(contextlib.ContextDecorator):
    """Profile a block (``with``) or every call of a function (decorator).

    Parameters
    ----------
    path : path-like, optional
        Output file; its suffix picks the format (``.html`` flame graph,
        ``.speedscope.json``, ``.prof`` cProfile stats, ``.txt``). Without a
        path, nothing is written and :attr:`result` holds the text summary.
    format : {"html", "speedscope", "pstats", "text"}, optional
        Overrides the suffix.
    interval_s : float, default=0.001
        pyinstrument's sampling interval.

    Attributes
    ----------
    result : ProfileResult or None
        The last run's result.

    Raises
    ------
    InvalidParameterError
        For an unknown suffix or format.

    Examples
    --------
    >>> with profile() as p:
    ...     _ = sum(i * i for i in range(10_000))
    >>> p.result.format
    'text'

    Notes
    -----
    As a decorator, each call overwrites the file; nested or concurrent calls
    of the same decorated function are profiled once, by the outermost call.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        format: str | None = None,
        interval_s: float = 0.001,
    ) -> None:
        given: object = path
        if given is not None and not isinstance(given, (str, os.PathLike)):
            hint = (
                " To decorate, call it first: @sf.profile('out.html') or @sf.profile(), not @sf.profile."
                if callable(given)
                else ""
            )
            raise InvalidParameterError(
                f"The 'path' parameter of profile must be a path or None. Got {given!r} instead.{hint}"
            )
        check_number(interval_s, "interval_s", "profile", minimum=0, exclusive_minimum=True)
        self.path = Path(path) if path is not None else None
        self.format = _infer_format(self.path, format, "profile")
        self.interval_s = float(interval_s)
        self.result: ProfileResult | None = None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._busy = False

    def _stack(self) -> list[_Run | None]:
        stack: list[_Run | None] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def __enter__(self) -> profile:
        stack = self._stack()
        with self._lock:
            if self._busy:  # nested or concurrent use: only the outermost run profiles
                stack.append(None)
                return self
            self._busy = True
        run = _Run(self.format, self.interval_s)
        stack.append(run)
        run.start()
        return self

    def __exit__(self, *exc: object) -> None:
        stack = self._stack()
        run = stack.pop() if stack else None
        if run is None:
            return
        try:
            run.stop()
            self.result = run.write(self.path)
            if self.path is not None:
                logger.info("profile written to %s", self.path)
        finally:
            with self._lock:
                self._busy = False


def profile_call(
    fn: Callable[..., Any], *args: Any, path: str | os.PathLike[str] | None = None, **kwargs: Any
) -> tuple[Any, ProfileResult]:
    """Call ``fn(*args, **kwargs)`` under the profiler.

    Parameters
    ----------
    fn : callable
    *args, **kwargs
        Passed to ``fn``.
    path : path-like, optional
        Output file (suffix picks the format).

    Returns
    -------
    value : object
        What ``fn`` returned.
    result : ProfileResult
    """
    if not callable(fn):
        raise InvalidParameterError(
            f"The 'fn' parameter of profile_call must be callable. Got {fn!r} instead."
        )
    prof = profile(path)
    with prof:
        value = fn(*args, **kwargs)
    if prof.result is None:  # pragma: no cover - only when called re-entrantly
        raise InvalidParameterError(
            "profile_call cannot be nested inside another profile_call of the same object."
        )
    return value, prof.result


@contextlib.contextmanager
def _script_context(script: Path, argv: Sequence[str]) -> Iterator[None]:
    old_argv, old_path = sys.argv[:], sys.path[:]
    sys.argv = [str(script), *argv]
    sys.path.insert(0, str(script.parent))
    try:
        yield
    finally:
        sys.argv, sys.path[:] = old_argv, old_path


def profile_script(
    script: str | os.PathLike[str],
    argv: Sequence[str] = (),
    *,
    output_dir: str | os.PathLike[str] | None = None,
    formats: Sequence[str] = ("html", "speedscope"),
    interval_s: float = 0.001,
) -> list[ProfileResult]:
    """Run a Python script as ``__main__`` under the profiler and write its profiles.

    pyinstrument formats (``html``, ``speedscope``, ``text``) share one run;
    ``pstats`` (cProfile) needs a run of its own, so asking for both runs the script twice.

    Parameters
    ----------
    script : path-like
        The ``.py`` file.
    argv : sequence of str, default=()
        Its command-line arguments.
    output_dir : path-like, optional
        Where to write ``<script>.html``, ``<script>.speedscope.json``,
        ``<script>.prof``; defaults to the current directory.
    formats : sequence of str, default=("html", "speedscope")
    interval_s : float, default=0.001

    Returns
    -------
    list of ProfileResult

    Raises
    ------
    InvalidParameterError
        If the script does not exist or is not a file, or a format is unknown.
    """
    path = Path(script)
    if not path.is_file():
        raise InvalidParameterError(
            f"The 'script' parameter of profile_script ({str(path)!r}) is not an existing file. "
            "Check the path: scaleforge profile path/to/script.py [args...]."
        )
    fmts = [check_choice(f, "formats", "profile_script", FORMATS) for f in formats]
    if not fmts:
        raise InvalidParameterError(
            "The 'formats' parameter of profile_script must name at least one format."
        )
    check_number(interval_s, "interval_s", "profile_script", minimum=0, exclusive_minimum=True)
    out = Path(output_dir) if output_dir is not None else Path.cwd()
    stem = path.stem
    names = {
        "html": f"{stem}.html",
        "speedscope": f"{stem}.speedscope.json",
        "pstats": f"{stem}.prof",
        "text": f"{stem}.txt",
    }
    results: list[ProfileResult] = []
    pyi = [f for f in fmts if f != "pstats"]
    runs: list[list[str]] = ([pyi] if pyi else []) + ([["pstats"]] if "pstats" in fmts else [])
    for group in runs:
        run = _Run(group[0], interval_s)
        with _script_context(path, argv):
            run.start()
            try:
                runpy.run_path(str(path), run_name="__main__")
            except SystemExit as exc:
                if exc.code not in (None, 0):
                    logger.warning("%s exited with status %s", path, exc.code)
            finally:
                run.stop()
        for fmt in group:
            run.fmt = fmt
            results.append(run.write(out / names[fmt]))
    return results
