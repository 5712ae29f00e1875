"""The FastAPI service in-process: auth and ownership, validation before queuing, results, metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _jobs_helpers import serve_in_thread, sqlite_db

from scaleforge.errors import InvalidParameterError
from scaleforge.jobs.service import create_app
from scaleforge.jobs.store import SQLJobStore
from scaleforge.jobs.worker import Worker

ALICE = {"Authorization": "Bearer alice-token"}
BOB = {"Authorization": "Bearer bob-token"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLJobStore]:
    s = sqlite_db(tmp_path).open()
    yield s
    s.close()


@pytest.fixture
def client(store: SQLJobStore) -> Iterator[httpx.Client]:
    app = create_app(store, tokens={"alice-token": "alice", "bob-token": "bob"}, max_body_bytes=4096)
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


def _submit(client: httpx.Client, headers: dict[str, str], **body: object) -> dict[str, object]:
    r = client.post(
        "/v1/jobs", json={"workload": "pde.poisson", "params": {"resolution": 8}, **body}, headers=headers
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_requests_without_a_valid_token_are_refused(client: httpx.Client) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic alice-token"}):
        r = client.get("/v1/jobs", headers=headers)
        assert r.status_code == 401 and "Bearer" in r.json()["detail"]
        assert r.headers["www-authenticate"] == "Bearer"


def test_another_owners_job_is_not_found(client: httpx.Client, store: SQLJobStore) -> None:
    job = _submit(client, ALICE)
    for method, path in [
        ("GET", f"/v1/jobs/{job['id']}"),
        ("POST", f"/v1/jobs/{job['id']}/cancel"),
        ("GET", f"/v1/jobs/{job['id']}/result"),
    ]:
        r = client.request(method, path, headers=BOB)
        assert r.status_code == 404, (method, path)
        assert job["id"] not in r.text or "No job" in r.text
        assert "params" not in r.json()
    assert client.get("/v1/jobs", headers=BOB).json() == {"items": [], "next_cursor": None}
    assert client.get("/v1/jobs?owner=alice", headers=BOB).status_code == 403
    assert store.get(str(job["id"])).status == "queued"  # bob's cancel did nothing


def test_idempotent_submission(client: httpx.Client, store: SQLJobStore) -> None:
    first = client.post(
        "/v1/jobs", json={"workload": "scaleforge.sleep", "idempotency_key": "k"}, headers=ALICE
    )
    again = client.post(
        "/v1/jobs", json={"workload": "scaleforge.sleep"}, headers={**ALICE, "Idempotency-Key": "k"}
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    conflict = client.post(
        "/v1/jobs",
        json={"workload": "scaleforge.sleep", "params": {"seconds": 1}, "idempotency_key": "k"},
        headers=ALICE,
    )
    assert conflict.status_code == 409 and "different" in conflict.json()["detail"]
    assert store.counts()["queued"] == 1


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"workload": "pde.poisson", "params": {"resolution": "fine"}}, '"resolution"'),
        ({"workload": "pde.poisson", "params": {"bogus": 1}}, '"bogus"'),
        ({"workload": "no.such.thing"}, "does not match any of the expected tags"),
        ({"workload": "pde.poisson", "priority": 10**6}, "priority"),
        ({"params": {}}, "workload"),
    ],
)
def test_bad_submissions_are_422_and_nothing_is_queued(
    client: httpx.Client, store: SQLJobStore, body: dict[str, object], needle: str
) -> None:
    r = client.post("/v1/jobs", json=body, headers=ALICE)
    assert r.status_code == 422
    assert needle in r.text
    assert sum(store.counts().values()) == 0


def test_oversize_bodies_are_413_and_nothing_is_queued(client: httpx.Client, store: SQLJobStore) -> None:
    big = {"workload": "scaleforge.sleep", "params": {"pad": "x" * 10_000}}
    r = client.post("/v1/jobs", json=big, headers=ALICE)
    assert r.status_code == 413 and "4096 bytes" in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while streaming
        yield b'{"workload": "scaleforge.sleep", "params": {"pad": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}}'

    r = client.post("/v1/jobs", content=chunks(), headers={**ALICE, "Content-Type": "application/json"})
    assert r.status_code == 413
    assert sum(store.counts().values()) == 0


def test_list_paginates_and_filters(client: httpx.Client) -> None:
    ids = [_submit(client, ALICE, idempotency_key=f"k{i}")["id"] for i in range(5)]
    client.post(f"/v1/jobs/{ids[1]}/cancel", headers=ALICE)
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/jobs", params=params, headers=ALICE).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    cancelled = client.get("/v1/jobs", params={"status": "cancelled"}, headers=ALICE).json()["items"]
    assert [j["id"] for j in cancelled] == [ids[1]]
    assert client.get("/v1/jobs", params={"status": "nope"}, headers=ALICE).status_code == 422
    assert client.get("/v1/jobs", params={"cursor": "nope"}, headers=ALICE).status_code == 422
    assert client.get("/v1/jobs", params={"cursor": "0" * 32}, headers=ALICE).status_code == 404


def test_result_is_409_until_the_job_succeeds(
    client: httpx.Client, store: SQLJobStore, tmp_path: Path
) -> None:
    job = _submit(client, ALICE)
    r = client.get(f"/v1/jobs/{job['id']}/result", headers=ALICE)
    assert r.status_code == 409 and "queued" in r.json()["detail"]
    Worker(store, executor="threads", result_dir=tmp_path / "r", poll_interval_s=0.02).run(
        stop_when_idle=True
    )
    body = client.get(f"/v1/jobs/{job['id']}/result", headers=ALICE).json()
    assert body["status"] == "succeeded" and 0.07 < body["result"]["u_max"] < 0.074
    assert client.get(f"/v1/jobs/{job['id']}", headers=ALICE).json()["status"] == "succeeded"


def test_cancel_a_queued_job(client: httpx.Client) -> None:
    job = _submit(client, ALICE)
    r = client.post(f"/v1/jobs/{job['id']}/cancel", headers=ALICE)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    r = client.get(f"/v1/jobs/{job['id']}/result", headers=ALICE)
    assert r.status_code == 409 and "cancelled" in r.json()["detail"]


def test_workloads_health_and_metrics(client: httpx.Client) -> None:
    items = client.get("/v1/workloads", headers=ALICE).json()["items"]
    poisson = next(w for w in items if w["name"] == "pde.poisson")
    assert poisson["parameters"]["properties"]["resolution"]["minimum"] == 2
    body = client.get("/openapi.json").json()["components"]["schemas"]["Submit_pde_poisson"]
    assert body["properties"]["workload"]["const"] == "pde.poisson"  # one exact body schema per workload
    assert client.get("/health").json() == {"status": "ok", "database": "ok"}
    for i in range(3):
        _submit(client, ALICE, idempotency_key=f"m{i}")
    text = client.get("/metrics").text
    assert "scaleforge_jobs_queue_depth 3.0" in text
    assert "scaleforge_jobs_recommended_workers 3.0" in text


def test_no_tokens_means_one_local_owner(store: SQLJobStore) -> None:
    with serve_in_thread(create_app(store, tokens={})) as url, httpx.Client(base_url=url) as c:
        r = c.post("/v1/jobs", json={"workload": "scaleforge.sleep"})
        assert r.status_code == 201 and r.json()["owner"] == "local"


def test_health_reports_an_unreachable_database(tmp_path: Path) -> None:
    store = SQLJobStore(f"sqlite:///{tmp_path / 'j.db'}")
    with serve_in_thread(create_app(store, tokens={})) as url, httpx.Client(base_url=url) as c:
        store.engine.dispose()
        (tmp_path / "j.db").unlink()
        (tmp_path / "j.db").mkdir()  # the database file is now a directory: every query fails
        assert c.get("/health").status_code == 503
        assert c.get("/v1/jobs").status_code == 503
    store.close()


def test_create_app_validates_arguments(store: SQLJobStore) -> None:
    with pytest.raises(InvalidParameterError, match="max_body_bytes"):
        create_app(store, tokens={}, max_body_bytes=10)
    with pytest.raises(InvalidParameterError, match="worker_concurrency"):
        create_app(store, tokens={}, worker_concurrency=0)


def test_body_limit_comes_from_settings(store: SQLJobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from scaleforge.settings import set_settings

    monkeypatch.setenv("SCALEFORGE_JOBS__MAX_BODY_BYTES", "2KB")
    set_settings(None)
    try:
        app = create_app(store, tokens={})
    finally:
        set_settings(None)
    body = {"workload": "scaleforge.sleep", "params": {"pad": "x" * 3000}}
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as c:
        r = c.post("/v1/jobs", json=body)
        assert r.status_code == 413 and "2000 bytes" in r.json()["detail"]
        assert c.post("/v1/jobs", json={"workload": "scaleforge.sleep"}).status_code == 201
    assert create_app(store, tokens={}, max_body_bytes=4096) is not None  # an argument beats it
