"""A Python client for the job service, over httpx.

Submissions always carry an idempotency key (generated when not given) and
are retried on connection errors and 5xx with the *same* key, so a retry after
a lost response or a restarted service never creates a second job.

Examples
--------
>>> from scaleforge.jobs import Client
>>> client = Client("http://127.0.0.1:8080", token="...")       # doctest: +SKIP
>>> job = client.submit("pde.poisson", {"resolution": 32})         # doctest: +SKIP
>>> client.wait(job.id).status, client.result(job.id)["u_max"]    # doctest: +SKIP
('succeeded', 0.0736...)
"""

from __future__ import annotations

import builtins
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from scaleforge.errors import InvalidParameterError, JobError, JobNotFoundError
from scaleforge.jobs.models import Job

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["Client"]

_RETRY_STATUS = frozenset({502, 503, 504})


class Client:
    """Talk to a ``scaleforge jobs serve`` service.

    Parameters
    ----------
    base_url : str, optional
        E.g. ``"http://jobs.example:8080"``; defaults to ``Settings.jobs.url``
        (``SCALEFORGE_JOBS__URL``).
    token : str, optional
        Bearer token (maps to your owner name on the service); defaults to
        ``Settings.jobs.token`` (``SCALEFORGE_JOBS__TOKEN``).
    timeout_s : float, default=30.0
        Per-request timeout.
    retries : int, default=3
        Extra attempts on connection errors and 502/503/504 (exponential backoff).
    backoff_s : float, default=0.2
        First backoff delay.
    transport : httpx.BaseTransport, optional
        For tests (e.g. ``httpx.ASGITransport`` is async-only; use a running server).

    Raises
    ------
    InvalidParameterError
        For a bad argument.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if base_url is None or token is None:
            from scaleforge.settings import get_settings

            settings = get_settings().jobs
            if base_url is None:
                base_url = settings.url
            if token is None and settings.token is not None:
                token = settings.token.get_secret_value()
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise InvalidParameterError(
                f"The 'base_url' parameter of Client must start with http:// or https://. Got {base_url!r}."
            )
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
            raise InvalidParameterError(
                f"The 'retries' parameter of Client must be an int in [0, 100]. Got {retries!r}."
            )
        if not isinstance(timeout_s, (int, float)) or isinstance(timeout_s, bool) or timeout_s <= 0:
            raise InvalidParameterError(
                f"The 'timeout_s' parameter of Client must be > 0. Got {timeout_s!r}."
            )
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.retries = retries
        self.backoff_s = float(backoff_s)
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s, transport=transport
        )

    # ---- plumbing ----------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise JobError(
                        f"Cannot reach the job service at {self._http.base_url} ({type(exc).__name__}: {exc}). "
                        "Check the URL and that `scaleforge jobs serve` is running."
                    ) from exc
            else:
                if response.status_code not in _RETRY_STATUS or attempt == self.retries:
                    return self._check(response)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _check(response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        code = response.status_code
        if code == 404:
            raise JobNotFoundError(str(detail))
        if code in (400, 413, 422):
            raise InvalidParameterError(str(detail))
        raise JobError(f"The job service answered {code}: {detail}")

    # ---- API ---------------------------------------------------------------------------
    def submit(
        self,
        workload: str,
        params: Mapping[str, Any] | None = None,
        *,
        priority: int = 0,
        idempotency_key: str | None = None,
        max_attempts: int | None = None,
    ) -> Job:
        """Submit a job; safe to retry (it carries an idempotency key).

        Parameters
        ----------
        workload : str
        params : mapping, optional
        priority : int, default=0
        idempotency_key : str, optional
            Generated when omitted; pass your own to make retries across
            processes (or restarts of your script) safe.
        max_attempts : int, optional

        Returns
        -------
        Job

        Raises
        ------
        InvalidParameterError
            Unknown workload, invalid parameters, or an oversize body.
        JobError
            The service is unreachable or failed.
        """
        body: dict[str, Any] = {
            "workload": workload,
            "params": dict(params or {}),
            "priority": priority,
            "idempotency_key": idempotency_key or uuid.uuid4().hex,
        }
        if max_attempts is not None:
            body["max_attempts"] = max_attempts
        return Job.from_dict(self._request("POST", "/v1/jobs", json=body).json())

    def get(self, job_id: str) -> Job:
        """Return one of your jobs.

        Parameters
        ----------
        job_id : str

        Returns
        -------
        Job

        Raises
        ------
        JobNotFoundError
        """
        return Job.from_dict(self._request("GET", f"/v1/jobs/{job_id}").json())

    def list(
        self, *, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[builtins.list[Job], str | None]:
        """Return one page of your jobs and the cursor of the next page.

        Parameters
        ----------
        status : str, optional
        limit : int, default=50
        cursor : str, optional

        Returns
        -------
        jobs : list of Job
        next_cursor : str or None
        """
        query: dict[str, Any] = {"limit": limit}
        if status is not None:
            query["status"] = status
        if cursor is not None:
            query["cursor"] = cursor
        body = self._request("GET", "/v1/jobs", params=query).json()
        return [Job.from_dict(j) for j in body["items"]], body.get("next_cursor")

    def iter_jobs(self, *, status: str | None = None, page_size: int = 100) -> Iterator[Job]:
        """Iterate over all your jobs, fetching pages as needed.

        Parameters
        ----------
        status : str, optional
        page_size : int, default=100

        Yields
        ------
        Job
        """
        cursor: str | None = None
        while True:
            jobs, cursor = self.list(status=status, limit=page_size, cursor=cursor)
            yield from jobs
            if cursor is None:
                return

    def cancel(self, job_id: str) -> Job:
        """Cancel one of your jobs.

        Parameters
        ----------
        job_id : str

        Returns
        -------
        Job
        """
        return Job.from_dict(self._request("POST", f"/v1/jobs/{job_id}/cancel").json())

    def result(self, job_id: str) -> Any:
        """The result of a succeeded job.

        Parameters
        ----------
        job_id : str

        Returns
        -------
        object
            The decoded JSON result; numpy arrays come back as arrays
            (:func:`scaleforge.jobs.results.from_json`).

        Raises
        ------
        JobError
            If the job has not succeeded (yet).
        """
        from scaleforge.jobs.results import from_json

        return from_json(self._request("GET", f"/v1/jobs/{job_id}/result").json()["result"])

    def result_array(self, job_id: str) -> NDArray[Any]:
        """The result of a succeeded job that returned one numpy array, fetched as ``.npy``.

        Parameters
        ----------
        job_id : str

        Returns
        -------
        numpy.ndarray
            Exact dtype and shape, without a JSON detour.

        Raises
        ------
        JobError
            If the job has not succeeded, or its result is not a single array (HTTP 406).
        """
        import io

        import numpy as np

        response = self._request("GET", f"/v1/jobs/{job_id}/result", headers={"Accept": "application/x-npy"})
        out: NDArray[Any] = np.load(io.BytesIO(response.content), allow_pickle=False)
        return out

    def wait(self, job_id: str, *, timeout_s: float = 600.0, poll_s: float = 0.2) -> Job:
        """Poll until the job has finished (succeeded, failed or cancelled).

        Parameters
        ----------
        job_id : str
        timeout_s : float, default=600.0
        poll_s : float, default=0.2

        Returns
        -------
        Job

        Raises
        ------
        TimeoutError
            If it is still queued or running after ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.get(job_id)
            if job.done:
                return job
            if time.monotonic() >= deadline:
                raise TimeoutError(f"Job {job_id} is still {job.status} after {timeout_s} s.")
            time.sleep(poll_s)

    def workloads(self) -> builtins.list[dict[str, Any]]:
        """What can be submitted, with parameter schemas.

        Returns
        -------
        list of dict
        """
        items: builtins.list[dict[str, Any]] = self._request("GET", "/v1/workloads").json()["items"]
        return items

    def health(self) -> dict[str, Any]:
        """The service's health.

        Returns
        -------
        dict
        """
        body: dict[str, Any] = self._request("GET", "/health").json()
        return body

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
