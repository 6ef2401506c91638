"""Why does the validation loss jump between epochs?  A diagnostic of the training loop.

Trains one network with the real loop's pieces (noise drawn per batch, Adam, step schedule) on a
simulated data set and records, after every epoch, the validation CRB-normalized loss measured
four ways:

* ``running``: eval mode with BatchNorm's running statistics (what the loop logged before);
* ``recal``: eval mode after re-estimating BatchNorm's statistics with the frozen weights over
  ``--recal-batches`` training batches (exact averages, ``momentum=None``);
* ``batch``: train-mode BatchNorm (statistics of the validation batch itself);
* ``median``: the median, over samples, of the per-sample error/CRB (robust to a few signals with
  tiny CRB);
* ``ema``: eval mode of an exponential moving average of the weights (``--ema-decay`` per step,
  crbnn.learn.loop.averaged_model, with warm-up), BatchNorm running statistics averaged alike;
* ``grad_norm_median`` / ``grad_norm_max``: the gradient's global L2 norm over the epoch's steps
  (before clipping with ``--grad-clip``).

The epoch-to-epoch jump is ``|log(L_e / L_{e-1})|``; the script prints its median and maximum for each
measure over the last half of training.  Usage::

    .venv/bin/python benchmarks/validation_stability.py --data results/simulate_dataset \
        [--loss crb] [--epochs 60] [--threads 2]
    .venv/bin/python benchmarks/validation_stability.py --tiny   # seconds: checks that it runs (tests)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from crbnn.common.seeds import derive_seed
from crbnn.learn.training_data import TrainingData, draw_noisy, make_validation_set, normalize_inputs, read_training_data
from crbnn.learn.loop import averaged_model, init_model
from crbnn.learn.losses import compute_loss, crb_normalized_errors
from crbnn.learn.nets import EstimatorNet
from crbnn.learn.train_settings import TrainSettings


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
    (this benchmark).  This replaces them by exact averages (``momentum=None``)
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


def _val(model, val, mode: str) -> tuple[float, float]:
    model.train(mode == "batch")
    with torch.no_grad():
        est = model(val.x)
    e = crb_normalized_errors(est, val.targets, val.crb).double()
    return float(e.mean()), float(e.median())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="folder with train.h5 and val.h5 (required unless --tiny)")
    ap.add_argument("--loss", default="crb")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--lr", type=float, default=0.005)
    ap.add_argument("--lr-step", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--recal-batches", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ema-decay", type=float, default=0.99)
    ap.add_argument("--grad-clip", type=float, default=None, help="clip the gradient's global L2 norm")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--tiny", action="store_true", help="synthetic data (256 signals), 4 epochs: checks that the script runs")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    train: TrainingData
    if a.tiny:
        from _synthetic import synthetic  # benchmarks/_synthetic.py (the script's folder is on sys.path)

        a.epochs, a.batch_size, a.recal_batches = 4, 128, 2  # 4 epochs: two in the last half, one jump
        train, val = synthetic(256), synthetic(128, seed=1)
    elif a.data is None:
        ap.error("--data is required (or --tiny)")
    else:
        train = read_training_data(a.data / "train.h5")
        val = read_training_data(a.data / "val.h5")
    s = TrainSettings.from_dict({"epochs": a.epochs, "batch_size": a.batch_size, "lr": a.lr,
                                 "lr_step_epochs": a.lr_step, "normalization": "first_coefficient",
                                 "network": {"preset": "default"}})
    model = init_model(s, train)
    opt = torch.optim.Adam(model.parameters(), lr=s.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=s.lr_step_epochs, gamma=s.lr_gamma)
    gen = torch.Generator().manual_seed(derive_seed(s.seed, "noise"))
    vs = make_validation_set(val, s, torch.device("cpu"))
    ema = averaged_model(model, a.ema_decay)
    rows = []
    n, bs = len(train), s.batch_size
    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        norms: list[float] = []
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n - 1, bs):
            idx = perm[start : start + bs]
            y, m2 = draw_noisy(train.coefficients[idx], gen, s.sigma, s.m0_range)
            x = normalize_inputs(y, s.normalization)
            crb = train.crb[idx] * (s.sigma**2 / m2)[:, None]
            loss = compute_loss(a.loss, model(x), train.targets[idx], crb)
            opt.zero_grad()
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip or float("inf"))
            norms.append(float(norm))
            opt.step()
            ema.update_parameters(model)
        sched.step()
        row = {"epoch": epoch}
        row["running"], row["median"] = _val(model, vs, "eval")
        row["batch"], _ = _val(model, vs, "batch")
        recalibrate_batchnorm(model, train.coefficients, s, torch.Generator().manual_seed(epoch), batches=a.recal_batches)
        row["recal"], _ = _val(model, vs, "eval")
        row["ema"], _ = _val(ema.module, vs, "eval")
        row["grad_norm_median"], row["grad_norm_max"] = float(np.median(norms)), float(np.max(norms))
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    half = rows[len(rows) // 2 :]
    print(f"\nepoch-to-epoch |log ratio| over epochs {half[0]['epoch']}-{half[-1]['epoch']} ({a.loss} loss):")
    for key in ("running", "recal", "batch", "median", "ema"):
        v = np.array([r[key] for r in half])
        j = np.abs(np.diff(np.log(v)))
        print(f"  {key:8s} median jump {np.median(j):.3f}  max jump {j.max():.3f}  last {v[-1]:.3f}  min {v.min():.3f}")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
