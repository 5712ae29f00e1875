"""The Python client and the ``scaleforge jobs`` CLI against a real service on a loopback port."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from _jobs_helpers import serve_in_thread, sqlite_db
from typer.testing import CliRunner

from scaleforge.cli.jobs import app as jobs_cli
from scaleforge.errors import InvalidParameterError, JobError, JobNotFoundError
from scaleforge.jobs.client import Client
from scaleforge.jobs.service import create_app
from scaleforge.jobs.store import SQLJobStore
from scaleforge.jobs.worker import Worker
from scaleforge.testing.fixtures import free_port

TOKENS = {"alice-token": "alice", "bob-token": "bob"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLJobStore]:
    s = sqlite_db(tmp_path).open()
    yield s
    s.close()


@pytest.fixture
def url(store: SQLJobStore) -> Iterator[str]:
    with serve_in_thread(create_app(store, tokens=TOKENS)) as base:
        yield base


def _drain(store: SQLJobStore, tmp_path: Path) -> None:
    Worker(store, executor="threads", result_dir=tmp_path / "r", poll_interval_s=0.02).run(
        stop_when_idle=True
    )


def test_client_submit_wait_result(url: str, store: SQLJobStore, tmp_path: Path) -> None:
    with Client(url, token="alice-token") as client:
        assert client.health()["status"] == "ok"
        assert "pde.poisson" in {w["name"] for w in client.workloads()}
        job = client.submit("pde.poisson", {"resolution": 8}, priority=2)
        assert job.status == "queued" and job.owner == "alice"
        same = client.submit("pde.poisson", {"resolution": 8}, priority=2, idempotency_key="k")
        assert client.submit("pde.poisson", {"resolution": 8}, priority=2, idempotency_key="k").id == same.id
        _drain(store, tmp_path)
        assert client.wait(job.id, timeout_s=30).status == "succeeded"
        assert client.result(job.id)["dofs"] == 81
        assert [j.id for j in client.iter_jobs(page_size=1)] == [job.id, same.id]


def test_client_errors_are_scaleforge_errors(url: str) -> None:
    with Client(url, token="alice-token") as alice, Client(url, token="bob-token") as bob:
        job = alice.submit("scaleforge.sleep")
        with pytest.raises(JobNotFoundError):
            bob.get(job.id)
        with pytest.raises(InvalidParameterError, match="'seconds'"):
            alice.submit("scaleforge.sleep", {"seconds": -1})
        with pytest.raises(JobError, match="no result"):
            alice.result(job.id)
        with pytest.raises(TimeoutError):
            alice.wait(job.id, timeout_s=0.1, poll_s=0.02)
    with Client(url) as anonymous, pytest.raises(JobError, match="401"):
        anonymous.list()


def test_client_retries_then_names_the_url() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with Client(dead, retries=1, backoff_s=0.01) as client, pytest.raises(JobError, match="Cannot reach"):
        client.submit("scaleforge.sleep")
    with pytest.raises(InvalidParameterError, match="base_url"):
        Client("localhost:8080")


def test_cli_round_trip(url: str, store: SQLJobStore, tmp_path: Path) -> None:
    runner = CliRunner()
    common = ["--url", url, "--token", "alice-token"]
    r = runner.invoke(jobs_cli, ["submit", "pde.poisson", "-p", "resolution=8", "-p", "kappa=2", *common])
    assert r.exit_code == 0, r.output
    job_id = r.output.strip()
    r = runner.invoke(jobs_cli, ["status", job_id, *common])
    assert json.loads(r.output)["params"] == {"resolution": 8, "kappa": 2.0, "f": 1.0}
    _drain(store, tmp_path)
    r = runner.invoke(jobs_cli, ["result", job_id, *common])
    assert r.exit_code == 0 and 0.03 < json.loads(r.output)["u_max"] < 0.04
    r = runner.invoke(jobs_cli, ["list", "--json", *common])
    assert [j["id"] for j in json.loads(r.output)["items"]] == [job_id]
    r = runner.invoke(jobs_cli, ["submit", "scaleforge.sleep", "--params-json", '{"seconds": 0}', *common])
    second = r.output.strip()
    r = runner.invoke(jobs_cli, ["cancel", second, *common])
    assert r.exit_code == 0 and "cancelled" in r.output
    r = runner.invoke(jobs_cli, ["list", "--status", "cancelled", *common])
    assert second in r.output


def test_cli_reports_errors_with_exit_code_2(url: str) -> None:
    runner = CliRunner()
    common = ["--url", url, "--token", "alice-token"]
    r = runner.invoke(jobs_cli, ["submit", "nope", *common])
    assert r.exit_code == 2 and "does not match any of the expected tags" in r.output
    r = runner.invoke(jobs_cli, ["submit", "scaleforge.sleep", "-p", "novalue", *common])
    assert r.exit_code == 2 and "KEY=VALUE" in r.output
    r = runner.invoke(jobs_cli, ["status", "0" * 32, *common])
    assert r.exit_code == 2 and "No job" in r.output


def test_cli_and_client_find_the_service_through_settings(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from scaleforge.settings import set_settings

    runner = CliRunner()
    monkeypatch.setenv("SCALEFORGE_JOBS__URL", url)
    monkeypatch.setenv("SCALEFORGE_JOBS__TOKEN", "alice-token")
    set_settings(None)
    try:
        r = runner.invoke(jobs_cli, ["submit", "scaleforge.sleep"])
        assert r.exit_code == 0, r.output
        with Client() as client:  # base URL and token from Settings.jobs
            assert client.get(r.output.strip()).owner == "alice"
        # The older variables still work and beat the settings.
        dead = f"http://127.0.0.1:{free_port()}"
        monkeypatch.setenv("SCALEFORGE_JOBS_TOKEN", "bob-token")
        r = runner.invoke(jobs_cli, ["list", "--json"])
        assert r.exit_code == 0 and json.loads(r.output)["items"] == []  # bob sees none of alice's
        monkeypatch.setenv("SCALEFORGE_JOBS_URL", dead)
        r = runner.invoke(jobs_cli, ["list", "--json"])
        assert r.exit_code == 2 and dead in r.output
    finally:
        set_settings(None)
