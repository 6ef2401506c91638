"""The training loop: one network trained with one loss, resumable, reproducible.

:func:`train_network` runs the phases in order: set up the network (:func:`init_model`, or a given
one to fine-tune) and the :class:`TrainingState`, resume from a matching checkpoint
(:mod:`crbnn.learn.checkpoints`), then per epoch :func:`train_epoch` (fresh noise for every batch,
:func:`crbnn.learn.training_data.draw_noisy`), :func:`validate_epoch` (averaged weights on the fixed validation
set), a history row and, when due, a checkpoint; :func:`finish` returns the best validated averaged
weights with the meta that inference needs (:mod:`crbnn.learn.model_file`).

All random numbers come from CPU ``torch.Generator`` objects seeded from the configuration
(:func:`crbnn.common.seeds.derive_seed`) and are moved to the device, so the same configuration on the
same machine gives the same weights, and a run resumed from a checkpoint gives the same weights as an
uninterrupted one.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from crbnn.common.interrupt import Interrupted
from crbnn.common.io import sha256_arrays
from crbnn.common.seeds import derive_seed
from crbnn.learn.checkpoints import checkpoint_path, fingerprint, load_checkpoint, save_checkpoint, to_cpu
from crbnn.learn.training_data import (
    TrainingData,
    ValidationSet,
    draw_noisy,
    make_validation_set,
    normalize_inputs,
    output_scaling,
)
from crbnn.learn.losses import LOSSES, bias_reduced_loss, compute_loss, crb_normalized_errors
from crbnn.learn.model_file import build_meta
from crbnn.learn.nets import EstimatorNet, build_network, count_weights
from crbnn.learn.train_settings import TrainSettings
from crbnn.physics.noise import crb_scale

log = logging.getLogger(__name__)


@torch.no_grad()
def validation_metrics(
    model: EstimatorNet, val: ValidationSet, names: Sequence[str], batch_size: int = 65536, loss: str = "crb",
    lam: float = 1.0, delta: float = 1.0,
) -> dict[str, float]:
    """``val_mse_<p>`` (physical units squared), ``val_crb_<p>``, ``val_crb_mean`` and ``val_loss``.

    ``val_loss`` is the training objective of ``loss`` on the validation set, the criterion of model
    selection: the mean of ``val_mse_<p>`` for ``mse``, ``val_crb_mean`` for ``crb``, and for
    ``bias_reduced`` its own objective (Mao et al.: squared bias plus the penalized variance, both over
    CRB, with ``lam`` and ``delta``) over the K validation draws of every signal (``val.x_multi``;
    ``val_bias_reduced``).  Eval mode.
    """
    was_training = model.training
    model.eval()
    est = torch.cat([model(val.x[i : i + batch_size]) for i in range(0, len(val.x), batch_size)])
    multi = None
    if loss == "bias_reduced" and val.x_multi is not None:
        flat = val.x_multi.reshape(-1, val.x_multi.shape[-1])
        multi = torch.cat([model(flat[i : i + batch_size]) for i in range(0, len(flat), batch_size)])
        multi = multi.reshape(val.x_multi.shape[0], val.x_multi.shape[1], -1)
    model.train(was_training)
    mse = ((est - val.targets) ** 2).double().mean(dim=0)
    crbn = crb_normalized_errors(est, val.targets, val.crb).double().mean(dim=0)
    out = {f"val_mse_{p}": float(mse[k]) for k, p in enumerate(names)}
    out.update({f"val_crb_{p}": float(crbn[k]) for k, p in enumerate(names)})
    out["val_crb_mean"] = float(crbn.mean())
    out["val_loss"] = float(mse.mean()) if loss == "mse" else out["val_crb_mean"]
    if multi is not None:
        assert val.crb_multi is not None
        out["val_bias_reduced"] = float(bias_reduced_loss(multi.double(), val.targets.double(), val.crb_multi.double(),
                                                          lam=lam, delta=delta))
        out["val_loss"] = out["val_bias_reduced"]
    return out


#: Steps whose gradient norms set the adaptive clipping threshold.
CLIP_WINDOW = 200


def clip_adaptive(model: torch.nn.Module, recent_norms: list[float], factor: float) -> float:
    """Clip the gradient's global L2 norm to ``factor`` times the median norm of the last
    :data:`CLIP_WINDOW` steps (no clipping during the first 20 steps); append this step's norm
    (before clipping) to ``recent_norms``, which the caller keeps (and checkpoints).  Returns the norm.

    Why: the CRB-normalized loss weights each signal by 1/CRB, which spans four orders of magnitude, so
    a batch that holds a badly estimated low-CRB signal has a gradient far above the median.  Adam
    then moves every weight by many learning rates at once and the network jumps.  A threshold
    relative to the recent median follows the gradient's scale through training.
    """
    params = [p for p in model.parameters() if p.grad is not None]
    norm = float(torch.nn.utils.get_total_norm([p.grad for p in params]))
    if len(recent_norms) >= 20:
        limit = factor * float(np.median(recent_norms))
        if norm > limit:
            torch.nn.utils.clip_grads_with_norm_(params, limit, torch.tensor(norm))
    recent_norms.append(norm)
    del recent_norms[:-CLIP_WINDOW]
    return norm


def _ema_average(decay: float) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """EMA update with warm-up: ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates."""

    def average(avg: torch.Tensor, current: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        d = torch.clamp((1.0 + n) / (10.0 + n), max=decay).to(avg.dtype)
        return avg * d + current * (1 - d)

    return average


def averaged_model(model: EstimatorNet, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """Exponential moving average of the weights and BatchNorm statistics of ``model``.

    Why: the validation loss of the last iterate can jump from epoch to epoch because the
    CRB-normalized loss weights signals whose CRB spans four orders of magnitude, so Adam's iterate
    wanders at the learning rates that train fastest; the average moves slowly
    (benchmarks/validation_stability.py measures the jumps of both).  The averaged network is the
    one validated and saved.
    """
    return torch.optim.swa_utils.AveragedModel(model, avg_fn=_ema_average(decay), use_buffers=True)


class TrainingError(RuntimeError):
    """Training cannot continue (non-finite loss, inconsistent data or checkpoint)."""


def _fmt_time(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}"


def init_model(settings: TrainSettings, data: TrainingData) -> EstimatorNet:
    """A freshly initialized network for ``data`` (seeded from ``settings.seed``; global RNG untouched)."""
    offset, scale = output_scaling(data.targets)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(settings.seed, "init"))
        return build_network(settings.network, 2 * data.rank, len(data.estimated), offset, scale)


def _weights_hash(model: torch.nn.Module) -> str:
    """sha256 of a network's weights (part of the run's fingerprint when training starts from one)."""
    return sha256_arrays(*(v.detach().cpu().numpy() for v in model.state_dict().values()))


@dataclass
class TrainingState:
    """Everything that changes while a network trains; a checkpoint is this on the CPU.

    ``epoch`` is the last completed epoch (the next one starts at its first batch), ``best`` the epoch,
    validation loss and averaged weights of the best validation so far, ``recent_norms`` the gradient
    norms of the adaptive clipping, ``wall_time_s`` the training time of all runs so far.
    """

    model: EstimatorNet
    ema: torch.optim.swa_utils.AveragedModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator
    best: dict[str, Any] = field(default_factory=lambda: {"epoch": 0, "val_loss": math.inf, "state": None})
    recent_norms: list[float] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    epoch: int = 0
    wall_time_s: float = 0.0

    @classmethod
    def start(cls, model: EstimatorNet, settings: TrainSettings) -> TrainingState:
        """A fresh state: averaged weights, Adam with a step schedule, the seeded noise generator."""
        opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=settings.lr_step_epochs, gamma=settings.lr_gamma)
        gen = torch.Generator().manual_seed(derive_seed(settings.seed, "noise"))
        return cls(model, averaged_model(model, settings.ema_decay), opt, sched, gen)

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint payload (CPU tensors), global RNG states included."""
        return {
            "epoch": self.epoch,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "ema": to_cpu(self.ema.state_dict()),
            "best": self.best,
            "recent_norms": list(self.recent_norms),
            "optimizer": to_cpu(self.optimizer.state_dict()),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "history": self.history,
            "wall_time_s": self.wall_time_s,
        }

    def load_state_dict(self, ckpt: Mapping[str, Any]) -> None:
        """Continue from a checkpoint written by :meth:`state_dict`."""
        self.model.load_state_dict(ckpt["model"])
        self.ema.load_state_dict(ckpt["ema"])
        self.best = dict(ckpt["best"])
        self.recent_norms = list(ckpt.get("recent_norms", []))
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.generator.set_state(ckpt["generator"])
        torch.set_rng_state(ckpt["torch_rng"])
        if torch.cuda.is_available() and ckpt.get("cuda_rng"):
            torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
        self.history = list(ckpt["history"])
        self.epoch = int(ckpt["epoch"])
        self.wall_time_s = float(ckpt["wall_time_s"])


@dataclass
class _DeviceData:
    """The training set on the training device, and how it is batched for one loss."""

    coefficients: torch.Tensor
    targets: torch.Tensor
    crb: torch.Tensor
    batch_size: int
    realizations: int | None  # noise draws per signal (bias-reduced loss), else None

    @classmethod
    def of(cls, data: TrainingData, settings: TrainSettings, loss: str, device: torch.device) -> _DeviceData:
        k = settings.realizations if loss == "bias_reduced" else None
        return cls(data.coefficients.to(device), data.targets.to(device), data.crb.to(device),
                   min(settings.batch_size, len(data)), k)


def _check_inputs(train: TrainingData, val: TrainingData, loss: str, init_from: EstimatorNet | None,
                  model: EstimatorNet, settings: TrainSettings) -> None:
    """Errors for a loss, data sets or a starting network that do not fit together."""
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose from {LOSSES}")
    if (train.basis_sha256, train.sequence_sha256, train.estimated) != (val.basis_sha256, val.sequence_sha256, val.estimated):
        raise TrainingError("training and validation sets differ in basis, pulse train or estimated parameters")
    if init_from is None:
        return
    if init_from.architecture() != model.architecture():
        raise TrainingError(f"init_from architecture {init_from.architecture()} differs from {model.architecture()}")
    if getattr(init_from, "meta", {}).get("normalization", settings.normalization) != settings.normalization:
        raise TrainingError("init_from network uses another input normalization")


def train_epoch(state: TrainingState, data: _DeviceData, settings: TrainSettings, loss: str, epoch: int
                ) -> tuple[float, int]:
    """One pass over the shuffled training set with fresh noise; returns (mean loss, samples used).

    Every optimizer step is followed by the update of the averaged weights.  A non-finite loss stops
    training with a :class:`TrainingError` naming the epoch and the batch.
    """
    model, gen, k_real = state.model, state.generator, data.realizations
    model.train()
    lr = float(state.optimizer.param_groups[0]["lr"])
    n = len(data.coefficients)
    perm = torch.randperm(n, generator=gen)
    total, count = 0.0, 0
    for b, start in enumerate(range(0, n, data.batch_size)):
        idx = perm[start : start + data.batch_size]
        if len(idx) < 2:  # BatchNorm needs two samples; a single leftover is dropped
            continue
        idx_d = idx.to(data.coefficients.device)
        y, m2 = draw_noisy(data.coefficients[idx_d], gen, settings.sigma, settings.m0_range, k_real,
                           settings.m0_distribution)
        x = normalize_inputs(y, settings.normalization)
        crb_b = data.crb[idx_d] * crb_scale(settings.sigma, m0_abs2=m2)[:, None]
        if k_real is None:
            est = model(x)
        else:
            est = model(x.reshape(-1, x.shape[-1])).reshape(len(idx), k_real, -1)
        value = compute_loss(loss, est, data.targets[idx_d], crb_b, lam=settings.lam, delta=settings.delta)
        v = float(value.detach())
        if not math.isfinite(v):
            bad_inputs = int((~torch.isfinite(x)).any(dim=-1).sum())
            raise TrainingError(
                f"non-finite {loss} loss ({v}) at epoch {epoch}, batch {b + 1} (lr {lr:g}); "
                f"{bad_inputs} non-finite normalized input row(s) in that batch. "
                "Lower optimizer.lr, set optimizer.grad_clip, or check the data set."
            )
        state.optimizer.zero_grad(set_to_none=True)
        value.backward()
        if settings.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        if settings.grad_clip_factor:
            clip_adaptive(model, state.recent_norms, settings.grad_clip_factor)
        state.optimizer.step()
        state.ema.update_parameters(model)
        total += v * len(idx)
        count += len(idx)
    state.scheduler.step()
    return total / max(count, 1), count


def validate_epoch(state: TrainingState, val_set: ValidationSet, names: Sequence[str], loss: str, epoch: int,
                   settings: TrainSettings | None = None) -> dict[str, float]:
    """Validation metrics of the averaged weights; keeps them as ``best`` when their loss (the
    objective of ``loss``, :func:`validation_metrics`) is the lowest."""
    kw = {"lam": settings.lam, "delta": settings.delta} if settings is not None else {}
    metrics = validation_metrics(state.ema.module, val_set, names, loss=loss, **kw)
    if metrics["val_loss"] < state.best["val_loss"] or state.best["state"] is None:
        state.best = {"epoch": epoch, "val_loss": metrics["val_loss"],
                      "state": {k: v.detach().cpu().clone() for k, v in state.ema.module.state_dict().items()}}
    return metrics


def finish(state: TrainingState, settings: TrainSettings, loss: str, data: TrainingData) -> EstimatorNet:
    """The selected network (best validated averaged weights) on the CPU in eval mode, with its meta."""
    model = state.model
    if state.best["state"] is not None:
        model.load_state_dict(state.best["state"])
    model.cpu().eval()
    model.meta = build_meta(model, settings, loss, data)  # type: ignore[assignment]
    model.meta["selected_epoch"] = int(state.best["epoch"])  # type: ignore[index]
    model.meta["selected_val_loss"] = float(state.best["val_loss"])  # type: ignore[index]
    return model


def train_network(
    train: TrainingData,
    val: TrainingData,
    settings: TrainSettings,
    loss: str,
    device: torch.device | str = "cpu",
    checkpoint_dir: str | os.PathLike[str] | None = None,
    init_from: EstimatorNet | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[EstimatorNet, list[dict[str, float]]]:
    """Train one network; return the model (on CPU, eval mode, with ``.meta``) and the per-epoch history.

    The phases: set up (or resume from a checkpoint), then per epoch :func:`train_epoch`,
    :func:`validate_epoch`, a history row and, when due, a checkpoint; finally :func:`finish`.
    After every optimizer step an exponential moving average of the weights (``settings.ema_decay``,
    :func:`averaged_model`) is updated; after every epoch that average is validated
    (:func:`validation_metrics`), and the returned model is the average of the epoch with the lowest
    ``val_loss`` (``meta["selected_epoch"]``), so the saved network does not depend on the luck of the
    last epoch.  ``train_loss`` in the history is the mean training loss of the raw iterate.

    Args:
        train, val: data sets of the same basis and pulse train.
        settings: see `TrainSettings`.
        loss: ``mse``, ``crb`` or ``bias_reduced``.
        device: torch device for the model and data (random numbers are always drawn on the CPU).
        checkpoint_dir: where ``last.pt`` is written every ``checkpoint_every`` epochs and after the
            last one; a matching checkpoint there is resumed (same settings and data, else ignored).
        init_from: a trained network to start from (fine-tuning; same architecture and normalization).
        on_epoch_end: called with the 1-based epoch after it and its checkpoint completed (tests
            use it to simulate a killed job).
        should_stop: polled after every epoch (e.g. a `crbnn.common.interrupt.StopRequest`); when true, the
            checkpoint of that epoch is written and `crbnn.common.interrupt.Interrupted` is raised.

    Raises:
        TrainingError: a non-finite loss (naming epoch and batch) or mismatched data sets.
        Interrupted: ``should_stop`` became true (the checkpoint allows a resume).
    """
    device = torch.device(device)
    train = train.subset(settings.max_train_samples)
    model = init_model(settings, train)
    _check_inputs(train, val, loss, init_from, model, settings)
    if init_from is not None:
        model.load_state_dict(init_from.state_dict())
    model.to(device)
    state = TrainingState.start(model, settings)
    run_fingerprint = fingerprint(settings, loss, train, val, _weights_hash(init_from) if init_from else "")
    ckpt_path = checkpoint_path(checkpoint_dir)
    ckpt = load_checkpoint(ckpt_path, run_fingerprint)
    if ckpt is not None:
        state.load_state_dict(ckpt)
        log.info("resumed from %s after epoch %d", ckpt_path, state.epoch)

    data = _DeviceData.of(train, settings, loss, device)
    val_set = make_validation_set(val, settings, device,
                                  settings.realizations if loss == "bias_reduced" else None)
    names = train.estimated
    log.info(
        "training %r: %d signals, %d validation, %d weights, device %s, epochs %d, batch %d%s",
        loss, len(train), len(val), count_weights(model), device, settings.epochs, data.batch_size,
        f" x {data.realizations} realizations" if data.realizations else "",
    )
    t_run, wall_before, first_epoch = time.perf_counter(), state.wall_time_s, state.epoch + 1
    for epoch in range(first_epoch, settings.epochs + 1):
        t0 = time.perf_counter()
        lr = float(state.optimizer.param_groups[0]["lr"])
        train_loss, count = train_epoch(state, data, settings, loss, epoch)
        t_train = time.perf_counter() - t0
        metrics = validate_epoch(state, val_set, names, loss, epoch, settings)
        state.epoch, state.wall_time_s = epoch, wall_before + time.perf_counter() - t_run
        row = {"epoch": epoch, "train_loss": train_loss, **metrics, "best_epoch": state.best["epoch"], "lr": lr,
               "epoch_time_s": time.perf_counter() - t0, "samples_per_s": count / t_train,
               "wall_time_s": state.wall_time_s}
        state.history.append(row)
        eta = (time.perf_counter() - t_run) / (epoch - first_epoch + 1) * (settings.epochs - epoch)
        per_param = ", ".join(f"{p} {metrics[f'val_crb_{p}']:.3g}" for p in names)
        log.info(
            "epoch %d/%d  train %s %.4g  val CRB-normalized %.4g (%s)  best epoch %d  lr %.3g  %.0f samples/s  ETA %s",
            epoch, settings.epochs, loss, train_loss, metrics["val_crb_mean"], per_param, state.best["epoch"], lr,
            row["samples_per_s"], _fmt_time(eta),
        )
        stop = should_stop is not None and should_stop()
        if ckpt_path is not None and (epoch % settings.checkpoint_every == 0 or epoch == settings.epochs or stop):
            save_checkpoint(ckpt_path, {**state.state_dict(), "settings": settings.to_dict(), "loss": loss},
                            run_fingerprint)
        if on_epoch_end is not None:
            on_epoch_end(epoch)
        if stop and epoch < settings.epochs:
            raise Interrupted(f"training {loss!r} stopped on request after epoch {epoch}/{settings.epochs}; "
                              f"checkpoint {ckpt_path}; rerun to resume")
    return finish(state, settings, loss, train), state.history


def write_history(history: Sequence[Mapping[str, float]], path: str | os.PathLike[str]) -> None:
    """Write the per-epoch history as CSV atomically (columns of the first row, in order)."""
    from crbnn.common.io import atomic_write

    if not history:
        raise ValueError("empty history")
    cols = list(history[0].keys())
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for row in history:
            w.writerow({k: row[k] for k in cols})
