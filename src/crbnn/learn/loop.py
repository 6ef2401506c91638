"""Training, saving, loading, inference and test-set evaluation of parameter-estimation networks.

Data: a simulated data set (``results/simulate_dataset/<name>.h5``, docs/architecture.md) holds
noise-free subspace coefficients ``c`` [n, R] at M0 = 1 and the CRB [n, E] at M0 = 1, sigma = 1.
Training draws, for every batch of every epoch, a complex ``M0`` with ``|M0| ~ U(m0_min, m0_max)`` and
uniform phase and white complex Gaussian noise of standard deviation ``sigma`` on the real and the
imaginary part of each coefficient: ``y = M0 c + n``; the sample's CRB becomes
``CRB * sigma^2 / |M0|^2``.  The validation set gets its noise once, from a fixed seed.

Inputs are normalized (`normalize_inputs`) and split into 2R reals ``[Re..., Im...]``.  All random
numbers come from CPU ``torch.Generator`` objects seeded from the configuration (and are moved to the
device), so the same configuration on the same machine gives the same weights, and a run resumed
from a checkpoint gives the same weights as an uninterrupted one.

Public API (stable, used by evaluation and image inference):

* `load_model(path, expect_basis_sha256=None, expect_sequence_sha256=None, device="cpu")`
* `predict(model, coefficients) -> np.ndarray [..., E]` (physical units)
* `read_training_data`, `train_network`, `save_model`, `evaluate_model`.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crbnn.common.interrupt import Interrupted
from crbnn.common.seeds import derive_seed
from crbnn.learn.checkpoints import CHECKPOINT_NAME, _atomic_torch_save, _fingerprint, _to_cpu
from crbnn.learn.data import (
    TrainingData,
    ValidationSet,
    draw_noisy,
    make_validation_set,
    normalize_inputs,
    output_scaling,
)
from crbnn.learn.losses import LOSSES, compute_loss, crb_normalized_errors
from crbnn.learn.model_file import build_meta
from crbnn.learn.nets import EstimatorNet, build_network, count_weights
from crbnn.learn.settings import TrainSettings

log = logging.getLogger("crbnn.learn.loop")


@torch.no_grad()
def recalibrate_batchnorm(
    model: EstimatorNet,
    coefficients: torch.Tensor,
    settings: TrainSettings,
    generator: torch.Generator,
    batches: int = 20,
) -> None:
    """Re-estimate BatchNorm's running statistics with the weights frozen.

    During training BatchNorm keeps exponential moving averages (momentum 0.1) of the batch
    statistics, i.e. of roughly the last ten batches, each computed with different weights.  Late in
    an epoch at a high learning rate these lag the weights, and the eval-mode network they define
    differs from epoch to epoch far more than the weights do: the validation loss jumps
    (benchmarks/validation_stability.py).  This replaces them by exact averages (``momentum=None``)
    over ``batches`` fresh noisy training batches of ``settings.batch_size`` signals, drawn with
    ``generator`` (the training noise stream is untouched).  No weight changes; a network without
    BatchNorm is left as it is.
    """
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns or batches <= 0:
        return
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative (exact) average
    was_training = model.training
    model.train()
    n, bs = int(coefficients.shape[0]), max(2, int(settings.batch_size))
    order = torch.randperm(n, generator=generator)
    for k in range(batches):
        idx = order[(k * bs) % n : (k * bs) % n + bs]
        if len(idx) < 2:
            continue
        y, _ = draw_noisy(coefficients[idx.to(coefficients.device)], generator, settings.sigma, settings.m0_range)
        model(normalize_inputs(y, settings.normalization))
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    model.train(was_training)


@torch.no_grad()
def validation_metrics(
    model: EstimatorNet, val: ValidationSet, names: Sequence[str], batch_size: int = 65536, loss: str = "crb"
) -> dict[str, float]:
    """``val_mse_<p>`` (physical units squared), ``val_crb_<p>``, ``val_crb_mean`` and ``val_loss``.

    ``val_loss`` is the training objective of ``loss`` on the validation set, the criterion of model
    selection: the mean of ``val_mse_<p>`` for ``mse``, ``val_crb_mean`` for ``crb`` and
    ``bias_reduced`` (whose own objective needs several noise draws per signal).  Eval mode.
    """
    was_training = model.training
    model.eval()
    est = torch.cat([model(val.x[i : i + batch_size]) for i in range(0, len(val.x), batch_size)])
    model.train(was_training)
    mse = ((est - val.targets) ** 2).double().mean(dim=0)
    crbn = crb_normalized_errors(est, val.targets, val.crb).double().mean(dim=0)
    out = {f"val_mse_{p}": float(mse[k]) for k, p in enumerate(names)}
    out.update({f"val_crb_{p}": float(crbn[k]) for k, p in enumerate(names)})
    out["val_crb_mean"] = float(crbn.mean())
    out["val_loss"] = float(mse.mean()) if loss == "mse" else out["val_crb_mean"]
    return out


#: Steps whose gradient norms set the adaptive clipping threshold.
CLIP_WINDOW = 200


def clip_adaptive(model: torch.nn.Module, recent_norms: list[float], factor: float) -> float:
    """Clip the gradient's global L2 norm to ``factor`` times the median norm of the last
    :data:`CLIP_WINDOW` steps (no clipping during the first 20 steps); append this step's norm
    (before clipping) to ``recent_norms``, which the caller keeps (and checkpoints).  Returns the norm.

    Why: the CRB-normalized loss weights each signal by 1/CRB, which spans four orders of magnitude, so
    a batch that holds a badly estimated low-CRB signal has a gradient 10-100 times the median.  Adam
    then moves every weight by up to ~30 learning rates at once and the network jumps (the validation
    loss went from 1.1 to 4.7 in one epoch at lr 4e-5 before this clip).  A threshold relative to the
    recent median follows the gradient's scale through training.
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

    Why: the validation loss of the last iterate jumps from epoch to epoch (by up to 10x in earlier
    runs) because the CRB-normalized loss weights signals whose CRB spans four orders of magnitude,
    so Adam's iterate wanders at the learning rates that train fastest.  Re-estimating BatchNorm's
    statistics does not remove the jumps; averaging the iterates does (median jump 6x smaller,
    benchmarks/validation_stability.py).  The averaged network is the one validated and saved.
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
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose from {LOSSES}")
    device = torch.device(device)
    if (train.basis_sha256, train.sequence_sha256, train.estimated) != (val.basis_sha256, val.sequence_sha256, val.estimated):
        raise TrainingError("training and validation sets differ in basis, pulse train or estimated parameters")
    train = train.subset(settings.max_train_samples)
    names = train.estimated
    model = init_model(settings, train)
    init_tag = ""
    if init_from is not None:
        if init_from.architecture() != model.architecture():
            raise TrainingError(f"init_from architecture {init_from.architecture()} differs from {model.architecture()}")
        if getattr(init_from, "meta", {}).get("normalization", settings.normalization) != settings.normalization:
            raise TrainingError("init_from network uses another input normalization")
        model.load_state_dict(init_from.state_dict())
        init_tag = hashlib.sha256(
            b"".join(v.detach().cpu().contiguous().numpy().tobytes() for v in init_from.state_dict().values())
        ).hexdigest()
    model.to(device)
    ema = averaged_model(model, settings.ema_decay)
    best: dict[str, Any] = {"epoch": 0, "val_loss": math.inf, "state": None}
    recent_norms: list[float] = []  # gradient norms of the last steps (adaptive clipping)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=settings.lr_step_epochs, gamma=settings.lr_gamma)
    gen = torch.Generator().manual_seed(derive_seed(settings.seed, "noise"))
    history: list[dict[str, float]] = []
    start_epoch, wall_before = 0, 0.0
    fingerprint = _fingerprint(settings, loss, train, val, init_tag)
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    if ckpt_path is not None and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ckpt.get("fingerprint") != fingerprint:
            log.warning("checkpoint %s is for other settings or data; starting afresh", ckpt_path)
        else:
            model.load_state_dict(ckpt["model"])
            ema.load_state_dict(ckpt["ema"])
            best = dict(ckpt["best"])
            recent_norms = list(ckpt.get("recent_norms", []))
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
            gen.set_state(ckpt["generator"])
            torch.set_rng_state(ckpt["torch_rng"])
            if torch.cuda.is_available() and ckpt.get("cuda_rng"):
                torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
            history = list(ckpt["history"])
            start_epoch = int(ckpt["epoch"])
            wall_before = float(ckpt["wall_time_s"])
            log.info("resumed from %s after epoch %d", ckpt_path, start_epoch)

    coeffs = train.coefficients.to(device)
    targets = train.targets.to(device)
    crb = train.crb.to(device)
    val_set = make_validation_set(val, settings, device)
    n = len(train)
    bs = min(settings.batch_size, n)
    k_real = settings.realizations if loss == "bias_reduced" else None
    log.info(
        "training %r: %d signals, %d validation, %d weights, device %s, epochs %d, batch %d%s",
        loss, n, len(val), count_weights(model), device, settings.epochs, bs,
        f" x {k_real} realizations" if k_real else "",
    )
    t_run = time.perf_counter()
    epochs_this_run = 0
    for epoch in range(start_epoch + 1, settings.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        lr = float(opt.param_groups[0]["lr"])
        perm = torch.randperm(n, generator=gen)
        total, count = 0.0, 0
        for b, start in enumerate(range(0, n, bs)):
            idx = perm[start : start + bs]
            if len(idx) < 2:  # BatchNorm needs two samples; a single leftover is dropped
                continue
            idx_d = idx.to(device)
            y, m2 = draw_noisy(coeffs[idx_d], gen, settings.sigma, settings.m0_range, k_real)
            x = normalize_inputs(y, settings.normalization)
            crb_b = crb[idx_d] * (settings.sigma**2 / m2)[:, None]
            if k_real is None:
                est = model(x)
            else:
                est = model(x.reshape(-1, x.shape[-1])).reshape(len(idx), k_real, -1)
            value = compute_loss(loss, est, targets[idx_d], crb_b, lam=settings.lam, delta=settings.delta)
            v = float(value.detach())
            if not math.isfinite(v):
                bad_inputs = int((~torch.isfinite(x)).any(dim=-1).sum())
                raise TrainingError(
                    f"non-finite {loss} loss ({v}) at epoch {epoch}, batch {b + 1} (lr {lr:g}); "
                    f"{bad_inputs} non-finite normalized input row(s) in that batch. "
                    "Lower optimizer.lr, set optimizer.grad_clip, or check the data set."
                )
            opt.zero_grad(set_to_none=True)
            value.backward()
            if settings.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            if settings.grad_clip_factor:
                clip_adaptive(model, recent_norms, settings.grad_clip_factor)
            opt.step()
            ema.update_parameters(model)
            total += v * len(idx)
            count += len(idx)
        sched.step()
        t_train = time.perf_counter() - t0
        metrics = validation_metrics(ema.module, val_set, names, loss=loss)
        if metrics["val_loss"] < best["val_loss"] or best["state"] is None:
            best = {"epoch": epoch, "val_loss": metrics["val_loss"],
                    "state": {k: v.detach().cpu().clone() for k, v in ema.module.state_dict().items()}}
        dt = time.perf_counter() - t0
        epochs_this_run += 1
        wall = wall_before + time.perf_counter() - t_run
        row = {"epoch": epoch, "train_loss": total / max(count, 1), **metrics, "best_epoch": best["epoch"],
               "lr": lr, "epoch_time_s": dt, "samples_per_s": count / t_train, "wall_time_s": wall}
        history.append(row)
        eta = (time.perf_counter() - t_run) / epochs_this_run * (settings.epochs - epoch)
        per_param = ", ".join(f"{p} {metrics[f'val_crb_{p}']:.3g}" for p in names)
        log.info(
            "epoch %d/%d  train %s %.4g  val CRB-normalized %.4g (%s)  best epoch %d  lr %.3g  %.0f samples/s  ETA %s",
            epoch, settings.epochs, loss, row["train_loss"], metrics["val_crb_mean"], per_param, best["epoch"], lr,
            row["samples_per_s"], _fmt_time(eta),
        )
        stop = should_stop is not None and should_stop()
        if ckpt_path is not None and (epoch % settings.checkpoint_every == 0 or epoch == settings.epochs or stop):
            state = {
                "fingerprint": fingerprint,
                "epoch": epoch,  # data position: the next epoch starts at its first batch
                "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "ema": _to_cpu(ema.state_dict()),
                "best": best,
                "recent_norms": list(recent_norms),
                "optimizer": _to_cpu(opt.state_dict()),
                "scheduler": sched.state_dict(),
                "generator": gen.get_state(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "history": history,
                "wall_time_s": wall,
                "settings": settings.to_dict(),
                "loss": loss,
            }
            _atomic_torch_save(state, ckpt_path)
        if on_epoch_end is not None:
            on_epoch_end(epoch)
        if stop and epoch < settings.epochs:
            raise Interrupted(f"training {loss!r} stopped on request after epoch {epoch}/{settings.epochs}; "
                              f"checkpoint {ckpt_path}; rerun to resume")
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    model.cpu().eval()
    model.meta = build_meta(model, settings, loss, train)  # type: ignore[assignment]
    model.meta["selected_epoch"] = int(best["epoch"])  # type: ignore[index]
    model.meta["selected_val_loss"] = float(best["val_loss"])  # type: ignore[index]
    return model, history


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
