"""Benchmark of the model server: scaleforge vs LitServe vs plain FastAPI without batching.

Every server serves the same model — an MLP 64 -> 256 -> 256 -> 64 in torch
with one intra-op thread, seeded — on the same lean JSON path
(``{"input": [64 floats]}`` in, the 64 outputs back):

- ``scaleforge``: ``create_app`` + ``TorchAPI``, dynamic batching (max 64 items,
  adaptive wait up to 5 ms), uvicorn + uvloop + httptools, one process;
- ``litserve``: ``LitAPI(max_batch_size=32, batch_timeout=0.005)`` on ``LitServer``
  (its own process launching: API server + inference worker);
- ``fastapi``: a plain FastAPI route, raw body + orjson, the model run per
  request off the event loop (a sync route in FastAPI's thread pool), no batching.

Each server runs as a subprocess on a free loopback port and is polled until
ready. Load comes from ``wrk`` (``/usr/bin/wrk``, Debian package ``wrk``; the
Makefile's bench target installs it) with a Lua script for the POST body, at 1
and 64 connections, in interleaved rounds (the server order rotates every
round). Server CPU time is read with psutil over the server's whole process
tree, before and after each run, and divided by the requests served.

Usage: ``python benchmarks/bench_serve.py [--quick]``. The last stdout line is
``{"bench": "serve", "metrics": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve()
SERVERS = ("scaleforge", "litserve", "fastapi")
PATHS = {"scaleforge": "/v1/models/mlp/predict", "litserve": "/predict", "fastapi": "/predict"}


# ----------------------------------------------------------------------------- server roles


def _mlp() -> object:
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(64, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 64),
    ).eval()


def role_scaleforge(port: int) -> None:
    from scaleforge.serve.adapters import TorchAPI
    from scaleforge.serve.app import create_app
    from scaleforge.serve.batching import BatchPolicy
    from scaleforge.serve.server import run

    api = TorchAPI(_mlp(), input_shape=(64,), device="cpu", num_threads=1)
    app = create_app({"mlp": api}, policy=BatchPolicy(max_batch_size=64, max_wait_s=0.005), max_queue=4096)
    run(app, host="127.0.0.1", port=port, log_level="error")


if "--role" in sys.argv and "litserve" in sys.argv:  # LitServe pickles the API class to its workers
    import litserve as ls
    import numpy as np
    import torch

    class MLPAPI(ls.LitAPI):  # type: ignore[misc]
        def setup(self, device: str) -> None:
            self.model = _mlp()

        def decode_request(self, request: dict) -> np.ndarray:  # type: ignore[type-arg]
            return np.asarray(request["input"], dtype=np.float32)

        def batch(self, inputs: list) -> torch.Tensor:  # type: ignore[type-arg]
            return torch.from_numpy(np.stack(inputs))

        def predict(self, x: torch.Tensor) -> np.ndarray:
            with torch.inference_mode():
                return self.model(x).numpy()

        def unbatch(self, output: np.ndarray) -> list:  # type: ignore[type-arg]
            return list(output)

        def encode_response(self, output: np.ndarray) -> dict:  # type: ignore[type-arg]
            return {"output": output.tolist()}


def role_litserve(port: int) -> None:
    import litserve as ls

    server = ls.LitServer(
        MLPAPI(max_batch_size=32, batch_timeout=0.005), accelerator="cpu", workers_per_device=1
    )
    server.run(host="127.0.0.1", port=port, log_level="error", generate_client_file=False)


if "--role" in sys.argv and "fastapi" in sys.argv:  # FastAPI resolves route annotations from module globals
    from fastapi import Request, Response


def role_fastapi(port: int) -> None:
    import numpy as np
    import orjson
    import torch
    import uvicorn
    from fastapi import FastAPI

    model = _mlp()
    app = FastAPI()

    def run_model(body: bytes) -> bytes:
        x = np.asarray(orjson.loads(body)["input"], dtype=np.float32)
        with torch.inference_mode():
            y = model(torch.from_numpy(x[None]))[0].numpy()
        return orjson.dumps({"output": y}, option=orjson.OPT_SERIALIZE_NUMPY)

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        body = await request.body()
        return Response(await run_in_threadpool(run_model, body), media_type="application/json")

    @app.get("/health")
    async def health() -> Response:
        return Response(b"ok")

    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="error", access_log=False, loop="uvloop", http="httptools"
    )


# ----------------------------------------------------------------------------- driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"server on port {port} not ready within {timeout_s} s")


def _tree_cpu(pid: int) -> float:
    total = 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if m is None:
        raise ValueError(f"cannot parse wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _wrk(port: int, path: str, conns: int, duration_s: float, script: Path) -> dict[str, float]:
    threads = 1 if conns == 1 else 2
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration_s:g}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, timeout=duration_s + 60, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*timeout (\d+)", out)
    return {
        "rps": rps,
        "requests": float(total),
        "p50_ms": p50,
        "p99_ms": p99,
        "non2xx": float(bad.group(1)) if bad else 0.0,
        "timeouts": float(errors.group(1)) if errors else 0.0,
    }


def _script(tmp: Path) -> Path:
    import random

    rng = random.Random(0)
    body = json.dumps({"input": [round(rng.uniform(-1, 1), 6) for _ in range(64)]})
    path = tmp / "post.lua"
    path.write_text(
        f'wrk.method = "POST"\nwrk.body = \'{body}\'\nwrk.headers["Content-Type"] = "application/json"\n'
    )
    return path


def _median_ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b, strict=True) if y > 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 s runs (~1.5 minutes)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--duration", type=float, default=None, help="seconds per wrk run")
    parser.add_argument("--role", choices=SERVERS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        {"scaleforge": role_scaleforge, "litserve": role_litserve, "fastapi": role_fastapi}[args.role](
            args.port
        )
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk (make bench does it)")
    rounds = args.rounds or (2 if args.quick else 5)
    duration = args.duration or (3.0 if args.quick else 8.0)
    conc_levels = (1, 64)
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    script = _script(tmp)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports: dict[str, int] = {}
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    results: dict[tuple[str, int], list[dict[str, float]]] = {
        (s, c): [] for s in SERVERS for c in conc_levels
    }
    try:
        for name in SERVERS:
            ports[name] = _free_port()
            procs[name] = subprocess.Popen(
                [sys.executable, str(HERE), "--role", name, "--port", str(ports[name])],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        for name in SERVERS:
            _wait_ready(ports[name], procs[name])
            _wrk(ports[name], PATHS[name], 16, 1.0, script)  # warm-up, not recorded
        for r in range(rounds):
            order = SERVERS[r % 3 :] + SERVERS[: r % 3]
            for conns in conc_levels:
                for name in order:
                    cpu0 = _tree_cpu(procs[name].pid)
                    res = _wrk(ports[name], PATHS[name], conns, duration, script)
                    cpu1 = _tree_cpu(procs[name].pid)
                    res["cpu_us_per_req"] = (cpu1 - cpu0) / max(1.0, res["requests"]) * 1e6
                    results[(name, conns)].append(res)
    finally:
        for proc in procs.values():
            for child in psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []:
                child.terminate()
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    def med(name: str, conns: int, key: str) -> float:
        return statistics.median(x[key] for x in results[(name, conns)])

    def series(name: str, conns: int, key: str) -> list[float]:
        return [x[key] for x in results[(name, conns)]]

    print(
        f"serve benchmark: MLP 64-256-256-64, torch 1 thread, {rounds} interleaved rounds of {duration:g} s (wrk)"
    )
    header = f"{'server':<11} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>10} {'non-2xx':>8}"
    print(header)
    print("-" * len(header))
    for conns in conc_levels:
        for name in SERVERS:
            print(
                f"{name:<11} {conns:>5} {med(name, conns, 'rps'):>9.0f} {med(name, conns, 'p50_ms'):>8.2f} "
                f"{med(name, conns, 'p99_ms'):>8.2f} {med(name, conns, 'cpu_us_per_req'):>10.0f} "
                f"{sum(series(name, conns, 'non2xx')):>8.0f}"
            )
    metrics = {
        "rps_c64_vs_litserve": _median_ratio(series("scaleforge", 64, "rps"), series("litserve", 64, "rps")),
        "p99_c64_vs_litserve": _median_ratio(
            series("scaleforge", 64, "p99_ms"), series("litserve", 64, "p99_ms")
        ),
        "p50_c1_ms": med("scaleforge", 1, "p50_ms"),
        "cpu_us_per_req_c64": med("scaleforge", 64, "cpu_us_per_req"),
        "rps_c64_vs_fastapi_nobatch": _median_ratio(
            series("scaleforge", 64, "rps"), series("fastapi", 64, "rps")
        ),
    }
    print()
    print("median of per-round ratios (scaleforge / other):")
    for key, value in metrics.items():
        print(f"  {key:<28} {value:8.3f}")
    print(json.dumps({"bench": "serve", "metrics": {k: round(v, 4) for k, v in metrics.items()}}))


if __name__ == "__main__":
    main()
