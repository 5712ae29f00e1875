"""Profiling outputs are real, loadable profiles naming the profiled code."""

from __future__ import annotations

import json
import pstats
from pathlib import Path

import pytest

import scaleforge as sf
from scaleforge.errors import InvalidParameterError
from scaleforge.monitor.profiling import profile, profile_call, profile_script


def _busy_function_for_profile(n: int = 200_000) -> int:
    return sum(i * i for i in range(n))


def test_context_manager_writes_an_html_flame_graph(tmp_path: Path) -> None:
    out = tmp_path / "block.html"
    with sf.profile(out) as p:
        _busy_function_for_profile()
    assert p.result is not None and p.result.path == out
    html = out.read_text()
    assert "<html" in html.lower()
    assert "_busy_function_for_profile" in html


def test_decorator_writes_speedscope_json(tmp_path: Path) -> None:
    out = tmp_path / "fn.speedscope.json"

    @profile(out)
    def work() -> int:
        return _busy_function_for_profile()

    assert work() == _busy_function_for_profile()
    doc = json.loads(out.read_text())
    assert doc["$schema"].startswith("https://www.speedscope.app")
    names = {frame["name"] for frame in doc["shared"]["frames"]}
    assert "_busy_function_for_profile" in names


def test_pstats_file_loads(tmp_path: Path) -> None:
    out = tmp_path / "c.prof"
    value, result = profile_call(_busy_function_for_profile, 1000, path=out)
    assert value == _busy_function_for_profile(1000)
    stats = pstats.Stats(str(out))
    assert any(func[2] == "_busy_function_for_profile" for func in stats.stats)  # type: ignore[attr-defined]
    assert "_busy_function_for_profile" in result.text


def test_nested_use_profiles_once(tmp_path: Path) -> None:
    p = profile(tmp_path / "n.txt")

    @p
    def recurse(k: int) -> int:
        return 0 if k == 0 else 1 + recurse(k - 1)

    assert recurse(5) == 5
    assert (tmp_path / "n.txt").read_text()


def test_bad_arguments() -> None:
    with pytest.raises(InvalidParameterError, match="unknown suffix"):
        profile("out.pdf")
    with pytest.raises(InvalidParameterError, match="format"):
        profile("out.html", format="svg")
    with pytest.raises(InvalidParameterError, match=r"@sf.profile\('out.html'\)"):
        profile(_busy_function_for_profile)  # type: ignore[arg-type]


def test_profile_script_writes_all_formats(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(
        "import sys\n"
        "def crunch_numbers():\n    return sum(i * i for i in range(300_000))\n"
        "if __name__ == '__main__':\n    assert sys.argv[1:] == ['--n', '3']\n    crunch_numbers()\n"
    )
    results = profile_script(
        script, ["--n", "3"], output_dir=tmp_path / "out", formats=["html", "speedscope", "pstats"]
    )
    assert [r.format for r in results] == ["html", "speedscope", "pstats"]
    assert "crunch_numbers" in (tmp_path / "out" / "job.html").read_text()
    assert json.loads((tmp_path / "out" / "job.speedscope.json").read_text())["shared"]["frames"]
    assert pstats.Stats(str(tmp_path / "out" / "job.prof")).total_calls > 0  # type: ignore[attr-defined]


def test_profile_script_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="not an existing file"):
        profile_script(tmp_path / "nope.py")
