"""The training loop every operator head shares.

Adam with a cosine or step schedule, early stopping on a validation loss,
gradient clipping, atomic checkpoints every N epochs and exact resume,
optional ``torch.compile`` and gradient checkpointing, autocast (bf16, or fp16
with a gradient scaler) on CUDA, and ``DistributedDataParallel`` over several
processes (NCCL on GPUs, gloo on CPU).

Reproducibility: every epoch reseeds torch from ``(seed, epoch)`` before it
shuffles and draws noise, so a run resumed from the checkpoint of epoch ``k``
replays epochs ``k+1...`` exactly as the uninterrupted run would.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaleforge._validation import check_choice, check_number
from scaleforge.errors import ComputeError, IntegrityError, InvalidParameterError
from scaleforge.workloads.operators.base import read_blob, read_meta, write_blob

if TYPE_CHECKING:
    import torch

__all__ = ["TrainConfig", "TrainResult", "checkpoint_epoch", "train_module"]

logger = logging.getLogger(__name__)

LossFn = Callable[["torch.nn.Module", "torch.Tensor", "torch.Tensor"], "torch.Tensor"]
EpochCallback = Callable[[int, float, float], None]

CHECKPOINT_NAME = "last.ckpt"


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Optimisation and runtime options of operator training.

    Parameters
    ----------
    epochs : int, default=100
        Maximum number of epochs.
    batch_size : int, default=20
        Global batch size (split across processes under DDP).
    lr : float, default=1e-3
        Adam learning rate.
    weight_decay : float, default=1e-4
        Adam weight decay.
    schedule : {"cosine", "step", "none"}, default="cosine"
        Learning-rate schedule over ``epochs``.
    patience : int or None, default=30
        Stop after this many epochs without a better validation loss; None disables.
    clip_norm : float or None, default=1.0
        Gradient-norm clipping threshold; None disables.
    checkpoint_every : int, default=10
        Checkpoint period in epochs (when a checkpoint directory is given).
    compile : bool, default=False
        Wrap the network in ``torch.compile``. Off by default: on CPU the first call
        compiled for ~3 min and the epochs after were no faster (inductor does not
        generate code for the complex spectral products).
    grad_checkpointing : bool, default=False
        Recompute Fourier-layer activations in backward to save memory (only pays
        when activations do not fit, e.g. large 2D grids on a GPU).
    precision : {"auto", "fp32", "bf16", "fp16"}, default="auto"
        Autocast dtype; ``auto`` is bf16 (or fp16) on CUDA and fp32 on CPU.
    world_size : int, default=0
        Number of DDP processes; ``0`` (auto) means one per CUDA device when several
        are present, else a single process. ``2`` on CPU runs DDP over gloo.
    device : str, default="auto"
        ``auto`` (CUDA if available, else CPU), ``cpu`` or ``cuda``.
    threads : int or None, default=None
        ``torch.set_num_threads`` while training; None means 1 on CPU (small FNO
        batches do not scale with intra-op threads, and oversubscribe shared cores).
    """

    epochs: int = 100
    batch_size: int = 20
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    patience: int | None = 30
    clip_norm: float | None = 1.0
    checkpoint_every: int = 10
    compile: bool = False
    grad_checkpointing: bool = False
    precision: str = "auto"
    world_size: int = 0
    device: str = "auto"
    threads: int | None = None

    def __post_init__(self) -> None:
        owner = "TrainConfig"
        check_number(self.epochs, "epochs", owner, minimum=1, integer=True)
        check_number(self.batch_size, "batch_size", owner, minimum=1, integer=True)
        check_number(self.lr, "lr", owner, minimum=0, exclusive_minimum=True)
        check_number(self.weight_decay, "weight_decay", owner, minimum=0)
        check_choice(self.schedule, "schedule", owner, ("cosine", "step", "none"))
        check_number(self.patience, "patience", owner, minimum=1, integer=True, allow_none=True)
        check_number(self.clip_norm, "clip_norm", owner, minimum=0, exclusive_minimum=True, allow_none=True)
        check_number(self.checkpoint_every, "checkpoint_every", owner, minimum=1, integer=True)
        check_choice(self.precision, "precision", owner, ("auto", "fp32", "bf16", "fp16"))
        check_number(self.world_size, "world_size", owner, minimum=0, integer=True)
        check_choice(self.device, "device", owner, ("auto", "cpu", "cuda"))
        check_number(self.threads, "threads", owner, minimum=1, integer=True, allow_none=True)
        if self.world_size > 1 and self.batch_size % self.world_size:
            raise InvalidParameterError(
                f"The 'batch_size' parameter of TrainConfig ({self.batch_size}) must be a multiple of "
                f"world_size ({self.world_size}) so every process gets an equal share of the global batch."
            )


@dataclass
class TrainResult:
    """What :func:`train_module` did.

    Attributes
    ----------
    history : list of dict
        ``{"epoch", "train_loss", "val_loss", "lr"}`` per epoch run.
    best_epoch : int
        Epoch whose weights were kept (best validation loss).
    epochs_run : int
        Last epoch run (early stopping may end before ``epochs``).
    seconds : float
        Wall time of this call.
    resumed_from : int or None
        Epoch of the checkpoint resumed from.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    epochs_run: int = 0
    seconds: float = 0.0
    resumed_from: int | None = None


def checkpoint_epoch(checkpoint_dir: str | os.PathLike[str]) -> int | None:
    """Epoch of the last checkpoint in ``checkpoint_dir``, or None (reads only the header).

    Parameters
    ----------
    checkpoint_dir : path-like

    Returns
    -------
    int or None
    """
    path = Path(checkpoint_dir) / CHECKPOINT_NAME
    if not path.is_file():
        return None
    try:
        return int(read_meta(path)["epoch"])
    except (IntegrityError, KeyError, ValueError):
        return None


def _device(config: TrainConfig) -> torch.device:
    import torch

    if config.device == "cuda" and not torch.cuda.is_available():
        logger.warning("device='cuda' requested but CUDA is not available; training on CPU")
        return torch.device("cpu")
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(config.device)


def _autocast(config: TrainConfig, device: torch.device) -> tuple[Any, bool]:
    """Return (autocast dtype or None, whether a GradScaler is needed)."""
    import torch

    want = config.precision
    if want == "fp32" or (want == "auto" and device.type == "cpu"):
        return None, False
    if device.type == "cpu":
        if want == "fp16":
            logger.info("fp16 autocast is not supported on CPU; using fp32")
            return None, False
        return torch.bfloat16, False
    if want in ("auto", "bf16") and torch.cuda.is_bf16_supported():
        return torch.bfloat16, False
    return torch.float16, True


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919) % (2**31 - 1)


def _scheduler(opt: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    import torch

    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, config.epochs // 4), gamma=0.5)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    import torch

    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def train_module(
    module: torch.nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    *,
    config: TrainConfig,
    seed: int = 0,
    signature: dict[str, Any] | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train ``module`` in place to minimise ``loss_fn(module, x_batch, y_batch)``.

    Parameters
    ----------
    module : torch.nn.Module
        The network; its weights are replaced by the best validation weights.
    loss_fn : callable
        ``loss_fn(module, xb, yb) -> scalar tensor``; must call ``module`` once. If it has a
        ``validation`` method with the same signature, that is the early-stopping criterion.
    x, y, x_val, y_val : torch.Tensor
        Normalised training and validation data (first axis = samples).
    config : TrainConfig
    seed : int, default=0
    signature : dict, optional
        Architecture description stored in checkpoints; a checkpoint with a
        different signature is refused on resume.
    checkpoint_dir : path-like, optional
        Directory of the atomic ``last.ckpt``.
    resume : bool, default=False
        Continue from ``checkpoint_dir/last.ckpt`` if present.
    on_epoch : callable, optional
        ``on_epoch(epoch, train_loss, val_loss)`` after every epoch (single process only).

    Returns
    -------
    TrainResult

    Raises
    ------
    InvalidParameterError
        When resuming from a checkpoint of another architecture or configuration.
    """
    import torch

    start = time.perf_counter()
    if resume and checkpoint_dir is None:
        raise InvalidParameterError(
            "resume=True needs a checkpoint_dir to resume from. Pass checkpoint_dir=..."
        )
    world = config.world_size
    if world == 0:
        world = max(1, torch.cuda.device_count()) if _device(config).type == "cuda" else 1
    sig = dict(signature or {})
    if world > 1:
        result = _run_ddp(
            module, loss_fn, x, y, x_val, y_val, config, seed, sig, checkpoint_dir, resume, world
        )
    else:
        # Small FNO batches gain little from intra-op threads and lose badly when cores are
        # shared (measured: 2 threads ran an epoch 8-10x slower than 1 on a loaded 2-core box).
        threads = (
            config.threads if config.threads is not None else (1 if _device(config).type == "cpu" else None)
        )
        with _threads(threads):
            result = _loop(
                module, loss_fn, x, y, x_val, y_val, config, seed, sig, checkpoint_dir, resume, 0, 1, on_epoch
            )
    result.seconds = time.perf_counter() - start
    return result


def _loop(
    module: torch.nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    config: TrainConfig,
    seed: int,
    signature: dict[str, Any],
    checkpoint_dir: str | os.PathLike[str] | None,
    resume: bool,
    rank: int,
    world: int,
    on_epoch: EpochCallback | None,
) -> TrainResult:
    import torch

    device = _device(config) if world == 1 or not torch.cuda.is_available() else torch.device("cuda", rank)
    torch.manual_seed(_epoch_seed(seed, 0))
    from scaleforge.workloads.operators.fno import FNO

    raw = module.to(device)
    if isinstance(raw, FNO):
        raw.grad_checkpointing = config.grad_checkpointing
    opt = torch.optim.Adam(raw.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = _scheduler(opt, config)
    dtype, needs_scaler = _autocast(config, device)
    scaler = torch.amp.GradScaler(device.type) if needs_scaler else None

    result = TrainResult()
    best_val = math.inf
    best_state = copy.deepcopy(raw.state_dict())
    bad_epochs = 0
    first_epoch = 1
    ckpt = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    full_sig = {**signature, "config": _config_signature(config), "n_train": int(x.shape[0]), "seed": seed}
    if resume and ckpt is not None and ckpt.is_file():
        meta, state = read_blob(ckpt)
        if meta.get("kind") != "checkpoint" or meta.get("signature") != full_sig:
            raise InvalidParameterError(
                f"The checkpoint {str(ckpt)!r} was written by another architecture, configuration or data "
                f"size ({meta.get('signature')}) than this run ({full_sig}). Resume with the same settings, "
                "or use a fresh checkpoint_dir."
            )
        raw.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        best_state = state["best_model"]
        best_val = float(state["best_val"])
        bad_epochs = int(state["bad_epochs"])
        result.history = list(state["history"])
        result.best_epoch = int(state["best_epoch"])
        first_epoch = int(meta["epoch"]) + 1
        result.resumed_from = int(meta["epoch"])
        logger.info("resuming training from epoch %d of %s", result.resumed_from, ckpt)

    net: torch.nn.Module = raw
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(raw, device_ids=[rank] if device.type == "cuda" else None)
    if config.compile:
        net = torch.compile(net)  # type: ignore[assignment]

    x, y, x_val, y_val = (t.to(device) for t in (x, y, x_val, y_val))
    n = x.shape[0]
    bs = config.batch_size
    epoch = first_epoch - 1
    stopped = bad_epochs >= (config.patience or math.inf)
    for epoch in range(first_epoch, config.epochs + 1):
        if stopped:
            epoch -= 1
            break
        # the global seed drives the noise of stochastic heads; the shuffle has its own generator so
        # that members trained concurrently in threads (ensembles) still shuffle deterministically
        torch.manual_seed(_epoch_seed(seed, epoch))
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(_epoch_seed(seed, epoch))).to(device)
        net.train()
        total, count = 0.0, 0
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            if world > 1:
                idx = idx[rank::world]
                if idx.numel() == 0:
                    continue
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = loss_fn(net, x[idx], y[idx])
            if not torch.isfinite(loss):
                raise ComputeError(
                    f"The training loss became {float(loss)} at epoch {epoch}. Lower TrainConfig.lr, "
                    "enable clip_norm, or check the data for outliers."
                )
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
                scaler.unscale_(opt)
            else:
                loss.backward()  # type: ignore[no-untyped-call]
            if config.clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(raw.parameters(), config.clip_norm)
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            total += float(loss.detach()) * idx.numel()
            count += idx.numel()
        sched.step()
        if world > 1:  # report the loss of the global batch, not of this rank's share
            import torch.distributed as dist

            sums = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
            dist.all_reduce(sums)
            total, count = float(sums[0]), int(sums[1])
        val = _validate(net, loss_fn, x_val, y_val, bs, device, dtype, seed, epoch)
        train_loss = total / max(count, 1)
        result.history.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val,
                "lr": float(opt.param_groups[0]["lr"]),
            }
        )
        if val < best_val:
            best_val, bad_epochs, result.best_epoch = val, 0, epoch
            best_state = copy.deepcopy(raw.state_dict())
        else:
            bad_epochs += 1
        stopped = config.patience is not None and bad_epochs >= config.patience
        if on_epoch is not None:
            on_epoch(epoch, train_loss, val)
        if (
            ckpt is not None
            and rank == 0
            and (epoch % config.checkpoint_every == 0 or stopped or epoch == config.epochs)
        ):
            state = {
                "model": raw.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "best_model": best_state,
                "best_val": best_val,
                "bad_epochs": bad_epochs,
                "history": result.history,
                "best_epoch": result.best_epoch,
            }
            write_blob(ckpt, {"kind": "checkpoint", "epoch": epoch, "signature": full_sig}, state)
        if stopped:
            logger.info("early stopping at epoch %d (best %d)", epoch, result.best_epoch)
            break
    result.epochs_run = epoch
    raw.load_state_dict(best_state)
    raw.eval()
    return result


def _validate(
    net: torch.nn.Module,
    loss_fn: LossFn,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    bs: int,
    device: torch.device,
    dtype: Any,
    seed: int,
    epoch: int,
) -> float:
    import torch

    # a fixed noise seed makes the validation loss of stochastic heads comparable across epochs
    state = torch.get_rng_state()
    torch.manual_seed(_epoch_seed(seed, -1))
    net.eval()
    criterion = getattr(loss_fn, "validation", loss_fn)
    total = 0.0
    with torch.no_grad():
        for i in range(0, x_val.shape[0], bs):
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = criterion(net, x_val[i : i + bs], y_val[i : i + bs])
            total += float(loss) * x_val[i : i + bs].shape[0]
    torch.set_rng_state(state)
    return total / x_val.shape[0]


def _config_signature(config: TrainConfig) -> dict[str, Any]:
    keep = ("epochs", "batch_size", "lr", "weight_decay", "schedule", "patience", "clip_norm")
    return {k: v for k, v in asdict(config).items() if k in keep}


def _run_ddp(
    module: torch.nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    config: TrainConfig,
    seed: int,
    signature: dict[str, Any],
    checkpoint_dir: str | os.PathLike[str] | None,
    resume: bool,
    world: int,
) -> TrainResult:
    import socket

    import torch
    from torch.multiprocessing.spawn import spawn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    with tempfile.TemporaryDirectory(prefix="scaleforge-ddp-") as tmp:
        out = Path(tmp) / "result.pt"
        args = (
            world,
            port,
            module.cpu(),
            loss_fn,
            x,
            y,
            x_val,
            y_val,
            config,
            seed,
            signature,
            checkpoint_dir,
            resume,
            str(out),
        )
        try:
            spawn(_ddp_worker, args=args, nprocs=world, join=True)  # type: ignore[no-untyped-call]
        except Exception as exc:  # ProcessRaisedException / ProcessExitedException
            raise ComputeError(f"Distributed training with {world} processes failed: {exc}") from exc
        payload = torch.load(out, weights_only=True)
    module.load_state_dict(payload["model"])
    module.eval()
    return TrainResult(
        history=list(payload["history"]),
        best_epoch=int(payload["best_epoch"]),
        epochs_run=int(payload["epochs_run"]),
        resumed_from=payload["resumed_from"],
    )


def _ddp_worker(
    rank: int,
    world: int,
    port: int,
    module: torch.nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    config: TrainConfig,
    seed: int,
    signature: dict[str, Any],
    checkpoint_dir: str | None,
    resume: bool,
    out: str,
) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(config.threads if config.threads is not None else 1)
    backend = "nccl" if torch.cuda.is_available() and torch.cuda.device_count() >= world else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        if backend == "nccl":
            torch.cuda.set_device(rank)
        # spawn shares tensors through shared memory: without a private copy every rank
        # would step the same parameters
        module = copy.deepcopy(module)
        result = _loop(
            module,
            loss_fn,
            x,
            y,
            x_val,
            y_val,
            config,
            seed,
            signature,
            checkpoint_dir,
            resume,
            rank,
            world,
            None,
        )
        if rank == 0:
            torch.save(
                {
                    "model": module.cpu().state_dict(),
                    "history": result.history,
                    "best_epoch": result.best_epoch,
                    "epochs_run": result.epochs_run,
                    "resumed_from": result.resumed_from,
                },
                out,
            )
        dist.barrier()
    finally:
        dist.destroy_process_group()
