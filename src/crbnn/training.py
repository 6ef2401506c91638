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

import copy
import csv
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from crbnn import __version__
from crbnn.io import atomic_write
from crbnn.devices import resolve_device  # noqa: F401  (re-exported for scripts)
from crbnn.interrupt import Interrupted
from crbnn.losses import LOSSES, compute_loss, crb_normalized_errors
from crbnn.nets import EstimatorNet, build_from_architecture, build_network, count_weights

log = logging.getLogger("crbnn.training")

NORMALIZATIONS = ("l2", "first_coefficient")
DEFAULT_UNITS = {"m0s": "1", "T1": "s", "T2f": "s", "Rex": "1/s", "T2s": "s", "omega0": "rad/s", "B1": "1"}
CHECKPOINT_NAME = "last.pt"


# ------------------------------------------------------------------------------------ settings


@dataclass
class TrainSettings:
    """Everything that determines a trained network (the config ``train`` section for one loss).

    Units: ``sigma`` noise standard deviation per real/imaginary part of a coefficient at M0 = 1;
    ``m0_range`` range of ``|M0|`` (dimensionless); ``lr`` learning rate; ``lr_step_epochs`` epochs
    between multiplications of the learning rate by ``lr_gamma``; ``batch_size`` signals per batch
    (each with ``realizations`` noise draws for the ``bias_reduced`` loss).

    Example:
        >>> TrainSettings.from_dict({"epochs": 3, "network": {"preset": "tiny"}}).epochs
        3
    """

    seed: int = 1
    sigma: float = 0.01
    m0_range: tuple[float, float] = (0.1, 1.0)
    normalization: str = "l2"
    network: dict[str, Any] = field(default_factory=lambda: {"preset": "default"})
    epochs: int = 100
    batch_size: int = 1024
    lr: float = 0.01
    lr_step_epochs: int = 40
    lr_gamma: float = 0.5
    grad_clip: float | None = None
    grad_clip_factor: float | None = None
    weight_decay: float = 0.0
    max_train_samples: int | None = None
    val_seed: int = 2
    checkpoint_every: int = 5
    realizations: int = 8
    lam: float = 1.0
    delta: float = 1.0
    ema_decay: float = 0.995

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainSettings:
        """Build from a flat dict; unknown keys are an error."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; known: {sorted(known)}")
        kw = dict(d)
        if "m0_range" in kw:
            kw["m0_range"] = tuple(float(v) for v in kw["m0_range"])
        s = cls(**kw)
        s.validate()
        return s

    def validate(self) -> None:
        """Raise ValueError on values out of range."""
        lo, hi = self.m0_range
        if not (0 < lo <= hi):
            raise ValueError(f"m0_range must satisfy 0 < min <= max, got {self.m0_range}")
        if self.sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        if self.epochs < 1 or self.batch_size < 2 or self.lr <= 0 or self.lr_step_epochs < 1:
            raise ValueError("epochs >= 1, batch_size >= 2, lr > 0 and lr_step_epochs >= 1 are required")
        if self.realizations < 2:
            raise ValueError(f"realizations must be >= 2, got {self.realizations}")
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if self.grad_clip_factor is not None and self.grad_clip_factor <= 1.0:
            raise ValueError(f"grad_clip_factor must be > 1 (or None), got {self.grad_clip_factor}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (``m0_range`` as a list)."""
        d = asdict(self)
        d["m0_range"] = list(self.m0_range)
        return d


def settings_for_loss(train_config: Mapping[str, Any], loss: str) -> dict[str, Any]:
    """Flatten the config ``train`` section into the `TrainSettings` dict of one loss.

    ``bias_reduced`` uses the ``bias_reduced`` sub-section's ``epochs``, ``lr`` and ``batch_size``
    where given (fine-tuning), plus its ``realizations``, ``lam`` and ``delta``.

    Example:
        >>> cfg = {"seed": 3, "noise": {"sigma": 0.01, "m0_min": 0.1, "m0_max": 1.0},
        ...        "normalization": "l2", "network": {"preset": "tiny"},
        ...        "optimizer": {"epochs": 5, "lr": 0.01, "batch_size": 64},
        ...        "bias_reduced": {"realizations": 4, "epochs": 2, "lr": 0.001}}
        >>> s = settings_for_loss(cfg, "bias_reduced")
        >>> s["epochs"], s["lr"], s["realizations"], s["batch_size"]
        (2, 0.001, 4, 64)
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose from {LOSSES}")
    c = train_config
    out: dict[str, Any] = {}
    for key in ("seed", "normalization", "max_train_samples", "val_seed", "checkpoint_every"):
        if key in c:
            out[key] = c[key]
    if "network" in c:
        out["network"] = dict(c["network"])
    noise = c.get("noise", {})
    if "sigma" in noise:
        out["sigma"] = noise["sigma"]
    if "m0_min" in noise or "m0_max" in noise:
        out["m0_range"] = [noise.get("m0_min", 0.1), noise.get("m0_max", 1.0)]
    for key in ("epochs", "batch_size", "lr", "lr_step_epochs", "lr_gamma", "grad_clip", "grad_clip_factor", "weight_decay",
                "ema_decay"):
        if key in c.get("optimizer", {}):
            out[key] = c["optimizer"][key]
    if loss == "bias_reduced":
        br = c.get("bias_reduced", {})
        for key in ("realizations", "lam", "delta"):
            if key in br:
                out[key] = br[key]
        for key in ("epochs", "lr", "batch_size", "lr_step_epochs"):
            if br.get(key) is not None:
                out[key] = br[key]
    return out


# ---------------------------------------------------------------------------------------- data


@dataclass
class TrainingData:
    """Noise-free coefficients with targets and CRB, as read from a simulated data set.

    ``coefficients`` complex64 [n, R] at M0 = 1; ``targets`` float32 [n, E] true estimated parameters
    (physical units); ``crb`` float32 [n, E] CRB at M0 = 1, sigma = 1 (units squared).
    """

    coefficients: torch.Tensor
    targets: torch.Tensor
    crb: torch.Tensor
    estimated: list[str]
    units: list[str]
    sequence_sha256: str
    basis_sha256: str
    path: str = ""
    nuisance: list[str] = field(default_factory=list)
    known: dict[str, float] = field(default_factory=dict)

    @property
    def rank(self) -> int:
        """R, the number of complex coefficients."""
        return int(self.coefficients.shape[1])

    def __len__(self) -> int:
        return int(self.coefficients.shape[0])

    def subset(self, n: int | None) -> TrainingData:
        """The first ``n`` samples (all when ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        return TrainingData(self.coefficients[:n], self.targets[:n], self.crb[:n], self.estimated, self.units,
                            self.sequence_sha256, self.basis_sha256, self.path, self.nuisance, self.known)

    def fingerprint(self) -> str:
        """sha256 of the arrays and hashes (identifies the data in checkpoints)."""
        h = hashlib.sha256()
        for t in (self.coefficients, self.targets, self.crb):
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        h.update(json.dumps([self.estimated, self.sequence_sha256, self.basis_sha256]).encode())
        return h.hexdigest()


def _decode(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray):
        return [x.decode() if isinstance(x, bytes) else x for x in v.tolist()]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _check_finite(name: str, arr: NDArray[Any], where: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.nonzero(bad.reshape(arr.shape[0], -1).any(axis=1))[0]
        raise ValueError(
            f"{where}: {name} contains {int(bad.sum())} NaN/inf value(s) in {rows.size} row(s), "
            f"first rows {rows[:5].tolist()}; regenerate or clean the data set"
        )


def read_training_data(path: str | os.PathLike[str], max_samples: int | None = None) -> TrainingData:
    """Read ``parameters``, ``coefficients`` and ``crb`` of a simulated data set (the Jacobian is not read).

    Raises ValueError naming the file and rows when any value is NaN/inf or a CRB is not positive.
    """
    import h5py

    from crbnn.dataset import read_dataset

    arrays, attrs = read_dataset(path, keys=("parameters", "coefficients", "crb"))
    sl = slice(None) if max_samples is None else slice(0, int(max_samples))
    coefficients = np.asarray(arrays["coefficients"][sl])
    params = np.asarray(arrays["parameters"][sl], dtype=np.float64)
    crb = np.asarray(arrays["crb"][sl], dtype=np.float64)
    pnames = list(attrs.get("parameter_names") or [])
    crb_names = list(attrs.get("crb_names") or [])
    punits: list[str] = []
    with h5py.File(path, "r") as f:
        punits = list(_decode(f["parameters"].attrs.get("units", [])))
    estimated = list(attrs.get("estimated", crb_names))
    if isinstance(estimated, str):
        estimated = json.loads(estimated) if estimated.startswith("[") else [estimated]
    if not pnames:
        from crbnn.sampling import TISSUE_PARAMETERS  # documented column order

        pnames = list(TISSUE_PARAMETERS)
    if crb_names and list(crb_names) != estimated:
        raise ValueError(f"{path}: crb columns {crb_names} differ from estimated {estimated}")
    missing = [p for p in estimated if p not in pnames]
    if missing:
        raise ValueError(f"{path}: estimated parameter(s) {missing} not among parameter columns {pnames}")
    cols = [pnames.index(p) for p in estimated]
    units = [punits[c] if len(punits) == len(pnames) else DEFAULT_UNITS.get(p, "") for p, c in zip(estimated, cols)]
    if not np.iscomplexobj(coefficients):
        raise ValueError(f"{path}: coefficients must be complex, got {coefficients.dtype}")
    targets = params[:, cols]
    nuisance = attrs.get("nuisance", [])
    if isinstance(nuisance, str):
        nuisance = json.loads(nuisance) if nuisance.startswith("[") else [nuisance]
    nuisance = list(nuisance)
    known: dict[str, float] = {}
    if nuisance:  # known parameters: neither estimated nor nuisance, one value in the whole set
        from crbnn.regime import known_parameters

        for p in known_parameters(estimated, nuisance):
            if p in pnames and len(params):
                col = params[:, pnames.index(p)]
                if not np.all(col == col[0]):
                    raise ValueError(f"{path}: {p} is known (neither estimated nor nuisance) but varies in the data set")
                known[p] = float(col[0])
    for name, arr in (("coefficients", coefficients), ("parameters", targets), ("crb", crb)):
        _check_finite(name, arr, str(path))
    if (crb <= 0).any():
        raise ValueError(f"{path}: crb has {int((crb <= 0).sum())} non-positive value(s)")
    return TrainingData(
        coefficients=torch.from_numpy(coefficients.astype(np.complex64)),
        targets=torch.from_numpy(targets.astype(np.float32)),
        crb=torch.from_numpy(crb.astype(np.float32)),
        estimated=estimated,
        units=units,
        sequence_sha256=str(attrs.get("sequence_sha256", "")),
        basis_sha256=str(attrs.get("basis_sha256", "")),
        path=str(path),
        nuisance=nuisance,
        known=known,
    )


def derive_seed(seed: int, tag: str) -> int:
    """A 63-bit seed derived from ``seed`` and a purpose ``tag`` (independent streams).

    Example:
        >>> derive_seed(1, "noise") != derive_seed(1, "init")
        True
    """
    return int.from_bytes(hashlib.sha256(f"{seed}:{tag}".encode()).digest()[:8], "little") >> 1


def draw_noisy(
    coefficients: torch.Tensor,
    generator: torch.Generator,
    sigma: float,
    m0_range: Sequence[float],
    realizations: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy measured coefficients ``M0 c + n`` and ``|M0|^2``.

    Random numbers come from the CPU ``generator`` and are moved to ``coefficients.device``.

    Args:
        coefficients: complex [n, R] noise-free coefficients at M0 = 1.
        generator: CPU generator.
        sigma: noise standard deviation of each real and imaginary part.
        m0_range: ``(min, max)`` of ``|M0|``; the phase of M0 is uniform in [0, 2 pi).
        realizations: None for one draw ([n, R]); K for K noise draws per signal sharing one M0 ([n, K, R]).

    Returns:
        ``(y, m0_abs2)``: noisy coefficients and ``|M0|^2`` [n] (scale the CRB by ``sigma^2 / m0_abs2``).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> y, m2 = draw_noisy(torch.ones(4, 3, dtype=torch.complex64), g, 0.01, (0.1, 1.0), realizations=2)
        >>> tuple(y.shape), bool(((m2 >= 0.01) & (m2 <= 1.0)).all())
        ((4, 2, 3), True)
    """
    n, r = coefficients.shape
    lo, hi = float(m0_range[0]), float(m0_range[1])
    mag = lo + (hi - lo) * torch.rand(n, generator=generator)
    phase = 2 * math.pi * torch.rand(n, generator=generator)
    m0 = torch.polar(mag, phase).to(torch.complex64)
    shape = (n, r) if realizations is None else (n, int(realizations), r)
    noise = torch.complex(
        sigma * torch.randn(shape, generator=generator), sigma * torch.randn(shape, generator=generator)
    )
    dev = coefficients.device
    m0, noise = m0.to(dev), noise.to(dev)
    if realizations is None:
        y = m0[:, None] * coefficients + noise
    else:
        y = (m0[:, None] * coefficients)[:, None, :] + noise
    return y, (mag**2).to(dev)


def normalize_inputs(y: torch.Tensor, method: str) -> torch.Tensor:
    """Network inputs: 2R reals ``[Re..., Im...]`` of complex coefficients ``y [..., R]``, normalized.

    ``l2``: divide the 2R reals by their L2 norm (the paper).  ``first_coefficient``: divide the complex
    coefficients by the first one (removes the scale and the phase of M0) before splitting.

    Example:
        >>> y = torch.tensor([[3 + 0j, 0 + 4j]], dtype=torch.complex64)
        >>> normalize_inputs(y, "l2").tolist()
        [[0.6000000238418579, 0.0, 0.0, 0.800000011920929]]
        >>> normalize_inputs(1j * y, "first_coefficient").tolist()
        [[1.0, 0.0, 0.0, 1.3333333730697632]]
    """
    if method == "l2":
        x = torch.cat((y.real, y.imag), dim=-1)
        return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    if method == "first_coefficient":
        z = y / y[..., :1]
        return torch.cat((z.real, z.imag), dim=-1)
    raise ValueError(f"unknown normalization {method!r}; choose from {NORMALIZATIONS}")


def output_scaling(targets: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-parameter affine output map ``(offset, scale)``: mean and standard deviation of the targets."""
    offset = targets.double().mean(dim=0)
    scale = targets.double().std(dim=0)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return offset.tolist(), scale.tolist()


# ----------------------------------------------------------------------------------- validation


@dataclass
class ValidationSet:
    """Validation inputs with noise drawn once: normalized inputs, targets, scaled CRB (on device)."""

    x: torch.Tensor
    targets: torch.Tensor
    crb: torch.Tensor


def make_validation_set(data: TrainingData, settings: TrainSettings, device: torch.device) -> ValidationSet:
    """Draw the validation noise once from ``settings.val_seed`` (same for every epoch and loss)."""
    g = torch.Generator().manual_seed(derive_seed(settings.val_seed, "validation"))
    y, m2 = draw_noisy(data.coefficients, g, settings.sigma, settings.m0_range)
    x = normalize_inputs(y, settings.normalization)
    crb = data.crb * (settings.sigma**2 / m2)[:, None]
    return ValidationSet(x.to(device), data.targets.to(device), crb.to(device))


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


# ------------------------------------------------------------------------------------- training


class TrainingError(RuntimeError):
    """Training cannot continue (non-finite loss, inconsistent data or checkpoint)."""


def _atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` through :func:`crbnn.io.atomic_write` (usual permissions, no temporary left)."""
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)


def _fmt_time(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}"


def _fingerprint(settings: TrainSettings, loss: str, train: TrainingData, val: TrainingData, init: str) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"settings": settings.to_dict(), "loss": loss, "init": init}, sort_keys=True).encode())
    h.update(train.fingerprint().encode())
    h.update(val.fingerprint().encode())
    return h.hexdigest()


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
        should_stop: polled after every epoch (e.g. a `crbnn.interrupt.StopRequest`); when true, the
            checkpoint of that epoch is written and `crbnn.interrupt.Interrupted` is raised.

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


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


def remove_checkpoint(checkpoint_dir: str | os.PathLike[str]) -> None:
    """Delete the checkpoint after the final model is safely written (a later rerun starts afresh)."""
    (Path(checkpoint_dir) / CHECKPOINT_NAME).unlink(missing_ok=True)
    try:
        Path(checkpoint_dir).rmdir()  # only when empty
    except OSError:
        pass


# ------------------------------------------------------------------------------- save and load


def build_meta(model: EstimatorNet, settings: TrainSettings, loss: str, data: TrainingData) -> dict[str, Any]:
    """Model metadata stored beside the weights (see docs/architecture.md, "Trained networks")."""
    return {
        "architecture": model.architecture(),
        "normalization": settings.normalization,
        "estimated": list(data.estimated),
        "nuisance": list(data.nuisance),  # unknown to the network besides its outputs (CRB, infer)
        "known": dict(data.known),  # parameters held at known values (SI), crbnn.regime
        "units": list(data.units),
        "output_offset": model.out_offset.tolist(),
        "output_scale": model.out_scale.tolist(),
        "sigma": float(settings.sigma),
        "m0_range": [float(v) for v in settings.m0_range],
        "sequence_sha256": data.sequence_sha256,
        "basis_sha256": data.basis_sha256,
        "rank": data.rank,
        "loss": loss,
        "settings": settings.to_dict(),
        "n_train": len(data),
        "crbnn_version": __version__,
    }


def save_model(model: EstimatorNet, path: str | os.PathLike[str]) -> None:
    """Write ``{"state_dict", "meta"}`` atomically with ``torch.save`` (tensors on CPU)."""
    meta = getattr(model, "meta", None)
    if not meta:
        raise ValueError("model has no .meta; train it with train_network or load it with load_model")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    _atomic_torch_save({"state_dict": state, "meta": copy.deepcopy(meta)}, Path(path))


class ModelFileError(ValueError):
    """A file that is not a model of this project (the message names the file and what it is)."""


def _what_file_is(path: Path, error: Exception) -> str:
    """A short description of a file torch cannot load as a model (for error messages)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(512)
    unsafe = any(k in str(error).lower() for k in ("weights only load failed", "unsupported global"))
    if size == 0:
        return "an empty file (0 bytes)"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "an HDF5 file, not a model saved by train_network (torch zip archive)"
    if unsafe:
        return "a pickle with objects other than tensors and plain data (not loaded: unsafe)"
    if head.startswith(b"PK\x03\x04"):
        return f"a damaged or truncated torch archive ({size} bytes)"
    try:
        head.decode("utf-8")
        return "a text file, not a model saved by train_network (torch zip archive)"
    except UnicodeDecodeError:
        return "not a model saved by train_network (torch zip archive)"


def read_model_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``{"state_dict", "meta"}`` dict of a model file, loaded with ``weights_only=True``.

    Raises :class:`ModelFileError` (one line naming the file and what is wrong) for a missing,
    empty, truncated, text or HDF5 file, a pickle with objects other than tensors and plain data, or
    a dict without ``state_dict`` and ``meta`` (architecture, estimated, normalization).
    """
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"{p}: model file not found")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types (OSError, RuntimeError, UnpicklingError, ...)
        raise ModelFileError(f"{p}: cannot load the model: {_what_file_is(p, e)}") from None
    if not isinstance(blob, dict) or not {"state_dict", "meta"} <= set(blob):
        keys = sorted(map(str, blob)) if isinstance(blob, dict) else type(blob).__name__
        raise ModelFileError(f"{p}: not a crbnn model: expected a dict with 'state_dict' and 'meta', got {keys}")
    meta = blob["meta"]
    missing = [k for k in ("architecture", "estimated", "normalization") if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise ModelFileError(f"{p}: not a crbnn model: its meta lacks {missing}")
    return blob


def load_model(
    path: str | os.PathLike[str],
    expect_basis_sha256: str | None = None,
    expect_sequence_sha256: str | None = None,
    device: torch.device | str = "cpu",
) -> EstimatorNet:
    """Load a saved network (``weights_only=True``) in eval mode with its ``.meta`` dict.

    Raises ValueError when ``expect_basis_sha256`` / ``expect_sequence_sha256`` are given and differ
    from the hashes the network was trained with (its inputs would mean something else).
    """
    blob = read_model_file(path)
    meta = blob["meta"]
    for what, expected, key in (
        ("basis", expect_basis_sha256, "basis_sha256"),
        ("pulse train (sequence)", expect_sequence_sha256, "sequence_sha256"),
    ):
        if expected is not None and expected != meta.get(key):
            raise ValueError(
                f"{path}: network was trained for {what} {key}={meta.get(key)!r}, but the data use "
                f"{expected!r}; retrain the network for this {what}"
            )
    try:
        model = build_from_architecture(meta["architecture"])
        model.load_state_dict(blob["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelFileError(f"{path}: the weights do not fit the architecture in its meta ({first})") from None
    model.meta = meta  # type: ignore[assignment]
    return model.to(device).eval()


@torch.no_grad()
def predict(
    model: EstimatorNet, coefficients: NDArray[np.complexfloating] | torch.Tensor, batch_size: int = 65536
) -> NDArray[np.float64]:
    """Estimates ``[..., E]`` in physical units (``model.meta["estimated"]``, ``["units"]``) of measured
    complex coefficients ``[..., R]`` (any scale and phase of M0).

    Raises ValueError on NaN/inf input or a wrong R.  Rows whose normalizer is zero (all-zero
    coefficients, or a zero first coefficient with ``first_coefficient``) give NaN.

    Example:
        >>> net = EstimatorNet([4, 8, 2]).eval()
        >>> net.meta = {"normalization": "l2"}
        >>> predict(net, np.ones((3, 2), complex)).shape
        (3, 2)
    """
    c = torch.as_tensor(coefficients)
    if not torch.is_complex(c):
        raise ValueError(f"predict needs complex coefficients [..., R], got dtype {c.dtype}")
    r = model.widths[0] // 2
    if c.shape[-1] != r:
        raise ValueError(f"predict: network expects R={r} coefficients, got shape {tuple(c.shape)}")
    lead = c.shape[:-1]
    c = c.reshape(-1, r).to(torch.complex64)
    if not torch.isfinite(torch.view_as_real(c)).all():
        bad = int((~torch.isfinite(torch.view_as_real(c))).reshape(len(c), -1).any(dim=1).sum())
        raise ValueError(f"predict: {bad} input row(s) contain NaN/inf coefficients")
    dev = model.out_offset.device
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(c), batch_size):
        x = normalize_inputs(c[i : i + batch_size].to(dev), model.meta["normalization"])
        out.append(model(x).double().cpu())
    model.train(was_training)
    est = torch.cat(out) if out else torch.zeros(0, model.widths[-1], dtype=torch.float64)
    return est.numpy().reshape(*lead, model.widths[-1])


# --------------------------------------------------------------------------------- evaluation


def evaluate_model(
    model: EstimatorNet,
    data: TrainingData,
    realizations: int = 10,
    seed: int = 3,
    sigma: float | None = None,
    m0_range: Sequence[float] | None = None,
    chunk: int = 8192,
) -> dict[str, Any]:
    """Test-set metrics with ``realizations`` noise draws per sample (each sample one random M0).

    Returns a JSON-able dict: per parameter ``crb_loss`` (mean of (est-true)^2/CRB, 1 for an efficient
    unbiased estimator) and ``crb_loss_mean``; ``rmse`` (physical units) and ``relative_rmse``
    (RMSE / mean |true|); ``median_abs_bias_over_sqrt_crb`` (bias = mean over realizations - true) and
    ``median_std_over_sqrt_crb``; ``seconds_per_voxel`` of `predict` (normalization included).
    ``sigma`` and ``m0_range`` default to those of training (``model.meta``).
    """
    meta = model.meta
    if data.basis_sha256 != meta.get("basis_sha256") or data.sequence_sha256 != meta.get("sequence_sha256"):
        raise ValueError("test data and network differ in basis or pulse train hash")
    sigma = float(meta["sigma"] if sigma is None else sigma)
    m0_range = tuple(meta["m0_range"] if m0_range is None else m0_range)
    names = list(meta["estimated"])
    g = torch.Generator().manual_seed(derive_seed(seed, "evaluate"))
    sq = torch.zeros(len(names), dtype=torch.float64)
    sqn = torch.zeros(len(names), dtype=torch.float64)
    bias_ratio, std_ratio = [], []
    t_pred, n_pred = 0.0, 0
    for i in range(0, len(data), chunk):
        c = data.coefficients[i : i + chunk]
        y, m2 = draw_noisy(c, g, sigma, m0_range, realizations)
        crb = data.crb[i : i + chunk].double() * (sigma**2 / m2.double())[:, None]
        t0 = time.perf_counter()
        est = torch.from_numpy(predict(model, y))
        if est.is_cuda:
            torch.cuda.synchronize()
        t_pred += time.perf_counter() - t0
        n_pred += y.shape[0] * y.shape[1]
        true = data.targets[i : i + chunk].double()
        err = est - true[:, None, :]
        sq += (err**2).sum(dim=(0, 1))
        sqn += (err**2 / crb[:, None, :]).sum(dim=(0, 1))
        bias_ratio.append((est.mean(dim=1) - true).abs() / crb.sqrt())
        std_ratio.append(est.std(dim=1) / crb.sqrt())
    total = len(data) * realizations
    mse = sq / total
    crbl = sqn / total
    rmse = mse.sqrt()
    mean_abs_true = data.targets.double().abs().mean(dim=0)
    br = torch.cat(bias_ratio).median(dim=0).values
    sr = torch.cat(std_ratio).median(dim=0).values
    as_dict = lambda t: {p: float(t[k]) for k, p in enumerate(names)}  # noqa: E731
    return {
        "loss": meta.get("loss"),
        "parameters": names,
        "units": list(meta.get("units", [])),
        "n_samples": len(data),
        "realizations": int(realizations),
        "sigma": sigma,
        "m0_range": list(m0_range),
        "crb_loss": as_dict(crbl),
        "crb_loss_mean": float(crbl.mean()),
        "rmse": as_dict(rmse),
        "relative_rmse": as_dict(rmse / mean_abs_true),
        "median_abs_bias_over_sqrt_crb": as_dict(br),
        "median_std_over_sqrt_crb": as_dict(sr),
        "seconds_per_voxel": t_pred / max(n_pred, 1),
        "device": str(model.out_offset.device),
        "seed": int(seed),
    }


def write_history(history: Sequence[Mapping[str, float]], path: str | os.PathLike[str]) -> None:
    """Write the per-epoch history as CSV atomically (columns of the first row, in order)."""
    from crbnn.io import atomic_write

    if not history:
        raise ValueError("empty history")
    cols = list(history[0].keys())
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for row in history:
            w.writerow({k: row[k] for k in cols})
