"""Property-based API tests: schemathesis drives every operation of the job service's OpenAPI schema.

Bounded (a few examples per operation) so it fits `make test`; checks that no input produces a
5xx and that every response matches the documented schema.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "jobs"))

from _jobs_helpers import serve_in_thread

from scaleforge.jobs.models import JobSpec
from scaleforge.jobs.service import create_app
from scaleforge.jobs.store import SQLJobStore

pytestmark = [pytest.mark.integration]

AUTH = {"Authorization": "Bearer st-token"}


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("jobs-st") / "jobs.db"
    store = SQLJobStore(f"sqlite:///{path}")
    store.submit(JobSpec("scaleforge.sleep", {"seconds": 0}), owner="st")  # something to find
    with serve_in_thread(create_app(store, tokens={"st-token": "st"}, max_body_bytes=64_000)) as url:
        yield url
    store.close()


@pytest.fixture(scope="module")
def api_schema(service_url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{service_url}/openapi.json")


def test_api_conforms_to_its_schema(api_schema: schemathesis.BaseSchema) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /v1/jobs", "GET /v1/jobs/{job_id}", "GET /v1/workloads"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=AUTH)

        check()
