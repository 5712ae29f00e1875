"""The ``slurm`` executor through submitit's local executor (no SLURM cluster exists here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import scaleforge as sf
from scaleforge.compute.registry import available_executors
from scaleforge.compute.slurm import SlurmExecutor, register
from scaleforge.errors import ComputeError, InvalidParameterError


def _square_and_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def _boom(x: int) -> int:
    raise ValueError(f"bad item {x}")


@pytest.fixture(autouse=True)
def importable_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    # Like a cluster node, the job's Python must be able to import the module defining the function.
    here = str(Path(__file__).resolve().parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))


def test_map_runs_each_chunk_as_a_slurm_job_in_another_process(tmp_path: Path) -> None:
    register()
    assert "slurm" in available_executors()
    with sf.executor("slurm", cluster="local", folder=tmp_path / "sub", poll_interval_s=0.1) as ex:
        assert isinstance(ex, SlurmExecutor) and ex.cluster == "local"
        failing = ex.submit(_boom, 7)  # runs alongside the map's jobs
        out = sf.map(_square_and_pid, [1, 2, 3], executor=ex, progress=False)
        with pytest.raises(ComputeError, match="bad item 7"):  # the remote traceback comes back
            failing.result(timeout=120)
    assert [v for v, _ in out] == [1, 4, 9]
    assert os.getpid() not in {pid for _, pid in out}
    assert any((tmp_path / "sub").iterdir())  # submitit wrote its job files there


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"cluster": "pbs"}, "cluster"), ({"walltime_min": 0}, "walltime_min"), ({"max_jobs": 0}, "max_jobs")],
)
def test_bad_arguments_name_the_parameter(tmp_path: Path, kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(InvalidParameterError, match=name):
        SlurmExecutor(folder=tmp_path, **kwargs)  # type: ignore[arg-type]


def test_omitted_arguments_come_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from scaleforge.settings import set_settings

    monkeypatch.setenv("SCALEFORGE_COMPUTE__SLURM__PARTITION", "long")
    monkeypatch.setenv("SCALEFORGE_COMPUTE__SLURM__WALLTIME_MIN", "7")
    monkeypatch.setenv("SCALEFORGE_COMPUTE__SLURM__MAX_REQUEUES", "5")
    monkeypatch.setenv("SCALEFORGE_COMPUTE__SLURM__FOLDER", str(tmp_path / "from-settings"))
    monkeypatch.setenv("SCALEFORGE_COMPUTE__SLURM__CLUSTER", "local")
    set_settings(None)
    try:
        ex = SlurmExecutor()
        try:
            assert (ex.partition, ex.walltime_min, ex.max_requeues) == ("long", 7, 5)
            assert ex.folder == tmp_path / "from-settings" and ex.cluster == "local"
            assert ex._ex._executor.parameters["timeout_min"] == 7  # what submitit will request
        finally:
            ex.shutdown()
        explicit = SlurmExecutor(walltime_min=3, max_requeues=0, folder=tmp_path / "arg")
        try:  # an argument beats the setting
            assert (explicit.walltime_min, explicit.max_requeues, explicit.folder) == (3, 0, tmp_path / "arg")
        finally:
            explicit.shutdown()
    finally:
        set_settings(None)
