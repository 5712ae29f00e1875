"""``scaleforge serve``: options, target resolution and error messages (no server is started here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from scaleforge.cli import app
from scaleforge.errors import InvalidParameterError
from scaleforge.serve.registry import ModelRegistry
from scaleforge.serve.server import ServeSpec, build_app, resolve_target

runner = CliRunner()


def test_help_lists_the_issue_options() -> None:
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ["--max-batch-size", "--max-wait-ms", "--workers", "--port", "--host", "--backend"]:
        assert option in result.output


def test_bad_backend_and_bad_target_exit_2_with_a_message(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "x:y", "--backend", "k8s"])
    assert result.exit_code == 2 and "--backend" in result.output
    result = runner.invoke(app, ["serve", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "Cannot serve" in result.output
    result = runner.invoke(app, ["serve", "math:sqrt", "--max-batch-size", "0", "--port", "1"])
    assert result.exit_code == 2 and "max_batch_size" in result.output


def test_resolve_target_kinds(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "models")
    reg.publish("m", "1", {"a.py": b"def f(x):\n    return x\n"}, loader="python", entry="a.py:f")
    root = tmp_path / "models"
    assert resolve_target(str(root)) == ("registry", root, None, None)
    assert resolve_target(str(root / "m")) == ("model", root, "m", None)
    assert resolve_target(str(root / "m" / "1")) == ("version", root, "m", "1")
    assert resolve_target("pkg.mod:obj")[0] == "import"
    with pytest.raises(InvalidParameterError, match="Cannot serve"):
        resolve_target("not-a-dir-nor-import")


def test_build_app_pins_a_version_directory(tmp_path: Path) -> None:
    import asyncio

    reg = ModelRegistry(tmp_path)
    for v, k in [("1", 1), ("2", 2)]:
        reg.publish(
            "m", v, {"a.py": f"def f(x):\n    return {k} * x\n".encode()}, loader="python", entry="a.py:f"
        )
    app = build_app(ServeSpec(str(tmp_path / "m" / "1")))

    async def main() -> dict[str, list[str]]:
        async with app.router.lifespan_context(app):
            return {n: sorted(v) for n, v in app.state.server.loaded().items()}

    assert asyncio.run(main()) == {"m": ["1"]}  # the newest (2) would be the default otherwise


def test_spec_validation() -> None:
    with pytest.raises(InvalidParameterError, match="max_wait_s"):
        ServeSpec("x:y", max_wait_s=-1.0)
    with pytest.raises(InvalidParameterError, match="worker"):
        ServeSpec("x:y", worker="fiber")
