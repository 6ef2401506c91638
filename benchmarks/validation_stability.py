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
measure over the last half of training.

``--trace``: instead, the real loop (`crbnn.learn.loop.train_network`, the config's defaults, EMA
validated every epoch) with its batch inputs traced: per epoch the largest normalized input
``max |x|`` of any training signal, in which step of the epoch it came, and the validated loss.
With ``first_coefficient`` normalization a signal whose first coefficient is small (``|c_1|`` at M0 = 1
goes down to 0.1, and ``|M0|`` to 0.1, so ``|M0 c_1|`` is near sigma) can get an input of tens or
hundreds when the noise nearly cancels ``M0 c_1``; ``--clamp-inputs T`` clamps the normalized inputs
of training batches to ``[-T, T]`` (same data stream otherwise), so that the run with and without
shows whether those inputs cause the jumps (docs/ablation.md).

``--replay``: no training at all.  The training loop draws its batch order and noise from one
generator seeded from ``train.seed`` whatever the loss and the network, so the inputs of every batch of a
finished run can be redrawn: per epoch the largest input, set beside the epoch-to-epoch rises of
``val_crb_mean`` in that run's ``history.csv`` files (``--history``, one per loss).  Usage::

    .venv/bin/python benchmarks/validation_stability.py --data results/simulate_dataset \
        [--loss crb] [--epochs 60] [--threads 2]
    .venv/bin/python benchmarks/validation_stability.py --trace --data results/simulate_dataset \
        [--epochs 60] [--seed 1] [--clamp-inputs 4] [--loss crb] --json trace.json
    .venv/bin/python benchmarks/validation_stability.py --replay --data results/simulate_dataset \
        --history results/train_network/crb/history.csv results/train_network/mse/history.csv --json replay.json
    .venv/bin/python benchmarks/validation_stability.py --tiny   # seconds: checks that it runs (tests)
"""

from __future__ import annotations

import argparse
import json
import math
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
from crbnn.physics.noise import crb_scale


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


def trace_real_loop(train: TrainingData, val: TrainingData, settings: TrainSettings, loss: str,
                    clamp: float | None) -> list[dict[str, float]]:
    """Train with `crbnn.learn.loop.train_network`; per epoch its history row plus the largest training
    input ``max_abs_x`` (and ``max_abs_x_step``, the step of the epoch it came in, of ``steps``) and
    ``n_above_5`` (training rows with an input above 5).  ``clamp``: clamp every training input to
    ``[-clamp, clamp]`` (the loop's normalization is wrapped; validation is unchanged)."""
    import crbnn.learn.loop as loop

    per_batch: list[tuple[float, int]] = []
    original = loop.normalize_inputs

    def traced(y: torch.Tensor, method: str) -> torch.Tensor:
        x = original(y, method)
        m = x.abs().amax(dim=-1)
        per_batch.append((float(m.max()), int((m > 5).sum())))
        return x.clamp(-clamp, clamp) if clamp else x

    marks: list[int] = [0]
    loop.normalize_inputs = traced
    try:
        _, hist = loop.train_network(train, val, settings, loss, on_epoch_end=lambda e: marks.append(len(per_batch)))
    finally:
        loop.normalize_inputs = original
    rows = []
    for e, h in enumerate(hist):
        batch = per_batch[marks[e] : marks[e + 1]]
        mx = [b[0] for b in batch]
        k = int(np.argmax(mx))
        rows.append({**{key: h[key] for key in ("epoch", "val_crb_mean", "train_loss", "lr")},
                     "max_abs_x": mx[k], "max_abs_x_step": k + 1, "steps": len(batch),
                     "n_above_5": sum(b[1] for b in batch)})
    return rows


def replay_inputs(train: TrainingData, settings: TrainSettings, epochs: int) -> list[dict[str, float]]:
    """Per epoch the largest normalized training input of the loop's data stream (``train_epoch``'s
    draws from the generator of ``TrainingState.start``, redrawn without a network): ``max_abs_x``, its
    step ``max_abs_x_step`` of ``steps``, ``n_above_5``, and for the signal of ``max_abs_x`` its
    ``abs_c1`` (|first coefficient| at M0 = 1) and ``abs_m0``."""
    gen = torch.Generator().manual_seed(derive_seed(settings.seed, "noise"))
    n, bs = len(train), min(settings.batch_size, len(train))
    rows = []
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(n, generator=gen)
        best = (-1.0, 0, 0, 0.0, 0.0)
        above, steps = 0, 0
        for start in range(0, n, bs):
            idx = perm[start : start + bs]
            if len(idx) < 2:
                continue
            steps += 1
            y, m2 = draw_noisy(train.coefficients[idx], gen, settings.sigma, settings.m0_range, None,
                               settings.m0_distribution)
            m = normalize_inputs(y, settings.normalization).abs().amax(dim=-1)
            above += int((m > 5).sum())
            k = int(m.argmax())
            if float(m[k]) > best[0]:
                best = (float(m[k]), steps, int(idx[k]), float(train.coefficients[idx[k], 0].abs()), float(m2[k].sqrt()))
        rows.append({"epoch": epoch, "max_abs_x": best[0], "max_abs_x_step": best[1], "steps": steps, "signal": best[2],
                     "abs_c1": best[3], "abs_m0": best[4], "n_above_5": above})
    return rows


def read_history(path: Path) -> dict[int, float]:
    """``{epoch: val_crb_mean}`` of a training history.csv."""
    import csv

    with path.open() as f:
        return {int(r["epoch"]): float(r["val_crb_mean"]) for r in csv.DictReader(f)}


def compare_replay(replay: list[dict[str, float]], histories: dict[str, dict[int, float]], top: int = 8) -> dict:
    """For every history, its ``top`` largest rises of ``val_crb_mean`` (log ratio to the epoch before)
    with the rank of that epoch's ``max_abs_x`` among all epochs (1 = the largest input of the run),
    and the same for the ``top`` epochs with the largest inputs; printed and returned."""
    mx = np.array([r["max_abs_x"] for r in replay])
    rank = np.empty(len(mx), dtype=int)
    rank[np.argsort(-mx)] = np.arange(1, len(mx) + 1)
    out: dict = {"top_inputs": [int(e) for e in np.argsort(-mx)[:top] + 1], "histories": {}}
    print(f"epochs with the largest inputs: " + ", ".join(f"{e} ({mx[e - 1]:.0f})" for e in out["top_inputs"]))
    for name, hist in histories.items():
        epochs = [e for e in sorted(hist) if e - 1 in hist and e <= len(replay)]
        rise = {e: math.log(hist[e] / hist[e - 1]) for e in epochs}
        big = sorted(sorted(rise, key=lambda e: -rise[e])[:top])
        ranks = [int(rank[e - 1]) for e in big]
        # the rise following each of the top-input epochs (that epoch or the next: the EMA validated at its end)
        after = [max(rise.get(e, 0.0), rise.get(e + 1, 0.0)) for e in out["top_inputs"]]
        med = float(np.median(list(rise.values())))
        out["histories"][name] = {"largest_rises": big, "rise": [rise[e] for e in big], "input_rank": ranks,
                                  "rise_after_top_inputs": after, "median_abs_rise": float(np.median(np.abs(list(rise.values()))))}
        print(f"{name}: largest rises at epochs {big}; rank of the epoch's largest input among {len(mx)}: {ranks}")
        print(f"  rise (log ratio) at or after the top-input epochs: {[round(v, 2) for v in after]} "
              f"(median |rise| {out['histories'][name]['median_abs_rise']:.3f}, median rise {med:.3f})")
    return out


def print_trace(rows: list[dict[str, float]], top: int = 8) -> None:
    """The ``top`` largest epoch-to-epoch rises of the validated loss with the inputs of their epoch."""
    v = np.array([r["val_crb_mean"] for r in rows])
    jump = np.r_[0.0, np.log(v[1:] / v[:-1])]
    order = np.argsort(-jump)[:top]
    print(f"largest rises of val_crb_mean (log ratio); max|x| of the epoch and its step; median epoch max|x| "
          f"{np.median([r['max_abs_x'] for r in rows]):.2f}")
    for i in sorted(order):
        r = rows[i]
        print(f"  epoch {r['epoch']:4d}  rise {jump[i]:6.3f}  val {r['val_crb_mean']:.3f}  max|x| {r['max_abs_x']:8.2f} "
              f"at step {r['max_abs_x_step']}/{r['steps']}  rows>5: {r['n_above_5']}")


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
    ap.add_argument("--trace", action="store_true", help="the real loop with its largest inputs traced per epoch")
    ap.add_argument("--clamp-inputs", type=float, default=None, help="--trace: clamp training inputs to [-T, T]")
    ap.add_argument("--seed", type=int, default=1, help="--trace: train.seed (init, shuffling, noise)")
    ap.add_argument("--normalization", default="first_coefficient", help="--trace / --replay: train.normalization")
    ap.add_argument("--n-train", type=int, default=None, help="--trace: the first N training signals")
    ap.add_argument("--replay", action="store_true", help="redraw the inputs of a finished run (no training)")
    ap.add_argument("--history", type=Path, nargs="*", default=[], help="--replay: history.csv files of that run")
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
    if a.replay or a.tiny:
        rs = TrainSettings.from_dict({"seed": a.seed, "batch_size": a.batch_size, "normalization": a.normalization})
        replay = replay_inputs(train, rs, 2 if a.tiny else a.epochs)
        hists = {p.parent.name: read_history(p) for p in a.history}
        if a.tiny:
            hists = {"synthetic": {1: 1.0, 2: 1.5}}
        cmp = compare_replay(replay, hists)
        if a.replay:
            if a.json:
                a.json.write_text(json.dumps({"settings": rs.to_dict(), "epochs": replay, **cmp}, indent=1))
            return
    if a.trace or a.tiny:
        ts = TrainSettings.from_dict({"epochs": 2 if a.tiny else a.epochs, "seed": a.seed, "max_train_samples": a.n_train,
                                      "normalization": a.normalization,
                                      "lr": a.lr, "lr_step_epochs": a.lr_step, "batch_size": a.batch_size,
                                      **({"network": {"preset": "tiny"}} if a.tiny else {})})
        trace = trace_real_loop(train, val, ts, a.loss, a.clamp_inputs)
        print_trace(trace)
        if a.trace:
            if a.json:
                a.json.write_text(json.dumps({"settings": ts.to_dict(), "clamp_inputs": a.clamp_inputs, "loss": a.loss,
                                              "epochs": trace}, indent=1))
            return
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
            crb = train.crb[idx] * crb_scale(s.sigma, m0_abs2=m2)[:, None]
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
