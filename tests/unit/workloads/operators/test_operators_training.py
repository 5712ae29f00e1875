"""Training loop: reproducibility, resume after SIGKILL, DDP on gloo, checkpoint checks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _optoys import TINY, make_toy

from scaleforge.errors import IntegrityError, InvalidParameterError
from scaleforge.workloads.operators.base import read_blob
from scaleforge.workloads.operators.fno import FNO
from scaleforge.workloads.operators.heads import GaussianOperator, _BetaNLL
from scaleforge.workloads.operators.training import TrainConfig, checkpoint_epoch, train_module

HERE = Path(__file__).parent
REPO = HERE.parents[3]


def test_seeded_runs_are_reproducible(toy_1d: dict[str, np.ndarray]) -> None:
    cfg = TrainConfig(epochs=4, batch_size=16)
    a = GaussianOperator(**TINY, training=cfg, random_state=3).fit(toy_1d["x"], toy_1d["y"])
    b = GaussianOperator(**TINY, training=cfg, random_state=3).fit(toy_1d["x"], toy_1d["y"])
    np.testing.assert_array_equal(a.predict(toy_1d["xt"])[0], b.predict(toy_1d["xt"])[0])
    assert [h["train_loss"] for h in a.history_] == [h["train_loss"] for h in b.history_]


def test_early_stopping_keeps_the_best_epoch(toy_1d: dict[str, np.ndarray]) -> None:
    cfg = TrainConfig(epochs=200, batch_size=16, lr=0.05, patience=3, schedule="none")
    model = GaussianOperator(**TINY, training=cfg).fit(toy_1d["x"], toy_1d["y"])
    vals = [h["val_loss"] for h in model.history_]
    assert len(vals) < 200
    best = int(np.argmin(vals))
    assert len(vals) - 1 - best == 3  # stopped exactly `patience` epochs after the best


_CHILD = textwrap.dedent(
    """
    import sys, numpy as np, torch
    torch.set_num_threads(1)
    sys.path.insert(0, {here!r})
    from _optoys import TINY, make_toy
    from scaleforge.workloads.operators.heads import GaussianOperator
    from scaleforge.workloads.operators.training import TrainConfig
    x, y = make_toy(96, 32, 1)
    cfg = TrainConfig(epochs={epochs}, batch_size=16, lr=5e-3, checkpoint_every=1, patience=None)
    GaussianOperator(**TINY, training=cfg).fit(x, y, checkpoint_dir={ckpt!r}, resume=True)
    print("finished")
    """
)


@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    epochs = 40
    ckpt = tmp_path / "ckpt"
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(here=str(HERE), epochs=epochs, ckpt=str(ckpt)))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    log = tmp_path / "child.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while (checkpoint_epoch(ckpt) or 0) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, log.read_text()
    killed_at = checkpoint_epoch(ckpt)
    assert killed_at is not None and 3 <= killed_at < epochs

    x, y = make_toy(96, 32, 1)
    xt, _ = make_toy(16, 32, 2)
    cfg = TrainConfig(epochs=epochs, batch_size=16, lr=5e-3, checkpoint_every=1, patience=None)
    resumed = GaussianOperator(**TINY, training=cfg).fit(x, y, checkpoint_dir=ckpt, resume=True)
    straight = GaussianOperator(**TINY, training=cfg).fit(x, y)
    assert len(resumed.history_) == len(straight.history_) == epochs
    np.testing.assert_allclose(
        [h["val_loss"] for h in resumed.history_],
        [h["val_loss"] for h in straight.history_],
        rtol=1e-5,
        atol=1e-6,
    )
    for a, b in zip(resumed.predict(xt), straight.predict(xt), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_resume_refuses_a_checkpoint_of_another_architecture(
    tmp_path: Path, toy_1d: dict[str, np.ndarray]
) -> None:
    cfg = TrainConfig(epochs=2, checkpoint_every=1)
    GaussianOperator(**TINY, training=cfg).fit(toy_1d["x"], toy_1d["y"], checkpoint_dir=tmp_path)
    assert checkpoint_epoch(tmp_path) == 2
    wider = GaussianOperator(**{**TINY, "width": 16}, training=cfg)
    with pytest.raises(InvalidParameterError, match="another architecture"):
        wider.fit(toy_1d["x"], toy_1d["y"], checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(InvalidParameterError, match="resume=True needs a checkpoint_dir"):
        wider.fit(toy_1d["x"], toy_1d["y"], resume=True)


def test_corrupt_checkpoint_is_detected(tmp_path: Path, toy_1d: dict[str, np.ndarray]) -> None:
    cfg = TrainConfig(epochs=1, checkpoint_every=1)
    GaussianOperator(**TINY, training=cfg).fit(toy_1d["x"], toy_1d["y"], checkpoint_dir=tmp_path)
    path = tmp_path / "last.ckpt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="Checksum mismatch"):
        read_blob(path)
    with pytest.raises(IntegrityError):
        GaussianOperator(**TINY, training=cfg).fit(
            toy_1d["x"], toy_1d["y"], checkpoint_dir=tmp_path, resume=True
        )


def test_train_config_validates() -> None:
    with pytest.raises(InvalidParameterError, match="'lr' parameter of TrainConfig"):
        TrainConfig(lr=0)
    with pytest.raises(InvalidParameterError, match="'schedule'"):
        TrainConfig(schedule="linear")
    with pytest.raises(InvalidParameterError, match="multiple of world_size"):
        TrainConfig(batch_size=15, world_size=2)


@pytest.mark.slow
def test_ddp_gloo_two_processes_matches_single_process() -> None:
    x, y = make_toy(64, 32, 1)
    xv, yv = make_toy(16, 32, 2)
    t = [torch.as_tensor(a, dtype=torch.float32) for a in (x, y, xv, yv)]
    torch.manual_seed(0)
    init = FNO(1, out_channels=2, width=8, modes=4, depth=2, hidden=8).state_dict()

    def run(world: int) -> tuple[list[dict[str, float]], FNO]:
        net = FNO(1, out_channels=2, width=8, modes=4, depth=2, hidden=8)
        net.load_state_dict(init)
        cfg = TrainConfig(epochs=4, batch_size=16, lr=3e-3, world_size=world, threads=1, patience=None)
        result = train_module(net, _BetaNLL(0.5), *t, config=cfg, seed=5)
        return result.history, net

    h1, net1 = run(1)
    h2, net2 = run(2)
    np.testing.assert_allclose([h["train_loss"] for h in h2], [h["train_loss"] for h in h1], rtol=1e-4)
    np.testing.assert_allclose([h["val_loss"] for h in h2], [h["val_loss"] for h in h1], rtol=1e-4)
    for (k, a), b in zip(net1.state_dict().items(), net2.state_dict().values(), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5, err_msg=k)
