"""Training data: simulated data sets read for training, noisy inputs, normalization, the validation set.

A simulated data set (``results/simulate_dataset/<name>.h5``, docs/architecture.md) holds noise-free
subspace coefficients ``c`` [n, R] at M0 = 1 and the CRB [n, E] at M0 = 1, sigma = 1.  Training draws,
for every batch of every epoch, a complex ``M0`` with ``|M0| ~ U(m0_min, m0_max)`` (or log-uniform,
``train.noise.m0_distribution``, :func:`log_uniform_magnitude`) and uniform phase and
white complex Gaussian noise of standard deviation ``sigma`` on the real and the imaginary part of
each coefficient (:mod:`crbnn.physics.noise`): ``y = M0 c + n``; the sample's CRB becomes
``CRB * sigma^2 / |M0|^2``.  The validation set gets its noise once, from a fixed seed.  Inputs are
normalized (:func:`normalize_inputs`) and split into 2R reals ``[Re..., Im...]``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from crbnn.common.io import decode_attr, sha256_arrays
from crbnn.common.parameters import UNITS
from crbnn.common.seeds import derive_seed
from crbnn.learn.train_settings import M0_DISTRIBUTIONS, NORMALIZATIONS, TrainSettings
from crbnn.physics.noise import add_noise, crb_scale, draw_m0

log = logging.getLogger(__name__)


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
        arrays = (t.detach().cpu().numpy() for t in (self.coefficients, self.targets, self.crb))
        return sha256_arrays(*arrays, json.dumps([self.estimated, self.sequence_sha256, self.basis_sha256]).encode())


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
    from crbnn.common.io import open_intermediate
    from crbnn.data.datasets import read_dataset

    arrays, attrs = read_dataset(path, keys=("parameters", "coefficients", "crb"))
    sl = slice(None) if max_samples is None else slice(0, int(max_samples))
    coefficients = np.asarray(arrays["coefficients"][sl])
    params = np.asarray(arrays["parameters"][sl], dtype=np.float64)
    crb = np.asarray(arrays["crb"][sl], dtype=np.float64)
    pnames = list(attrs.get("parameter_names") or [])
    crb_names = list(attrs.get("crb_names") or [])
    punits: list[str] = []
    with open_intermediate(path) as f:
        punits = list(decode_attr(f["parameters"].attrs.get("units", [])))
    estimated = list(attrs.get("estimated", crb_names))  # string lists: write_dataset stores string arrays
    if not pnames:
        from crbnn.common.parameters import TISSUE_PARAMETERS

        pnames = list(TISSUE_PARAMETERS)
    if crb_names and list(crb_names) != estimated:
        raise ValueError(f"{path}: crb columns {crb_names} differ from estimated {estimated}")
    missing = [p for p in estimated if p not in pnames]
    if missing:
        raise ValueError(f"{path}: estimated parameter(s) {missing} not among parameter columns {pnames}")
    cols = [pnames.index(p) for p in estimated]
    units = [punits[c] if len(punits) == len(pnames) else UNITS.get(p, "") for p, c in zip(estimated, cols)]
    if not np.iscomplexobj(coefficients):
        raise ValueError(f"{path}: coefficients must be complex, got {coefficients.dtype}")
    targets = params[:, cols]
    nuisance = list(attrs.get("nuisance", []))
    known: dict[str, float] = {}
    if nuisance:  # known parameters: neither estimated nor nuisance, one value in the whole set
        from crbnn.config.regime import known_parameters

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


def draw_noisy(
    coefficients: torch.Tensor,
    generator: torch.Generator,
    sigma: float,
    m0_range: Sequence[float],
    realizations: int | None = None,
    distribution: str = "uniform",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy measured coefficients ``M0 c + n`` and ``|M0|^2``.

    Random numbers come from the CPU ``generator`` and are moved to ``coefficients.device``.

    Args:
        coefficients: complex [n, R] noise-free coefficients at M0 = 1.
        generator: CPU generator.
        sigma: noise standard deviation of each real and imaginary part.
        m0_range: ``(min, max)`` of ``|M0|``; the phase of M0 is uniform in [0, 2 pi).
        realizations: None for one draw ([n, R]); K for K noise draws per signal sharing one M0 ([n, K, R]).
        distribution: of ``|M0|`` in ``m0_range``: ``uniform`` (uniform SNR) or ``log_uniform`` (uniform
            log SNR, :func:`log_uniform_magnitude`; the same random numbers, so the noise that follows
            is the same).

    Returns:
        ``(y, m0_abs2)``: noisy coefficients and ``|M0|^2`` [n] (scale the CRB by ``crb_scale(sigma, m0_abs2=m0_abs2)``).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> y, m2 = draw_noisy(torch.ones(4, 3, dtype=torch.complex64), g, 0.01, (0.1, 1.0), realizations=2)
        >>> tuple(y.shape), bool(((m2 >= 0.01) & (m2 <= 1.0)).all())
        ((4, 2, 3), True)
    """
    n, r = coefficients.shape
    m0 = draw_m0(generator, (n,), m0_range)
    if distribution == "log_uniform":
        m0 = log_uniform_magnitude(m0, m0_range)
    elif distribution != "uniform":
        raise ValueError(f"unknown |M0| distribution {distribution!r}; choose from {M0_DISTRIBUTIONS}")
    m0 = m0.to(coefficients.device)
    clean = m0[:, None] * coefficients
    if realizations is not None:
        clean = clean[:, None, :].expand(n, int(realizations), r)
    return add_noise(generator, clean, sigma), m0.abs() ** 2


def log_uniform_magnitude(m0: torch.Tensor, m0_range: Sequence[float]) -> torch.Tensor:
    """``m0`` drawn with ``|M0| ~ U(lo, hi)`` mapped to ``|M0| = lo (hi / lo)^u``, ``u = (|M0| - lo) / (hi - lo)``
    (log-uniform in [lo, hi]), phase kept.

    Why: with a uniform ``|M0|`` the SNR 10-20 decade gets 11 % of the training signals and the SNR
    50-100 half; a log-uniform ``|M0|`` gives every factor of SNR the same share (docs/ablation.md).

    Example:
        >>> m = torch.tensor([0.1, 0.55, 1.0], dtype=torch.complex64)
        >>> [round(float(v), 4) for v in log_uniform_magnitude(m, (0.1, 1.0)).abs()]
        [0.1, 0.3162, 1.0]
    """
    lo, hi = float(m0_range[0]), float(m0_range[1])
    mag = m0.abs()
    if hi <= lo:
        return m0
    u = ((mag.double() - lo) / (hi - lo)).clamp(0.0, 1.0)
    new = (lo * (hi / lo) ** u).to(mag.dtype)
    return m0 * torch.where(mag > 0, new / mag, torch.ones_like(mag))


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


@dataclass
class ValidationSet:
    """Validation inputs with noise drawn once: normalized inputs, targets, scaled CRB (on device).

    ``x_multi`` / ``crb_multi``: for the bias-reduced loss, ``K`` further noise draws of every signal
    sharing one M0 ([n, K, inputs] and the CRB [n, E] they share), so that its own objective (bias and
    variance over realizations) can be validated; None otherwise.
    """

    x: torch.Tensor
    targets: torch.Tensor
    crb: torch.Tensor
    x_multi: torch.Tensor | None = None
    crb_multi: torch.Tensor | None = None


def make_validation_set(data: TrainingData, settings: TrainSettings, device: torch.device,
                        realizations: int | None = None) -> ValidationSet:
    """Draw the validation noise once from ``settings.val_seed`` (same for every epoch and loss), with
    the training noise model (``sigma``, ``m0_range``, ``m0_distribution``).

    With ``realizations`` K (the bias-reduced loss), K more draws per signal from a stream of their
    own, so the one-draw inputs are the same for every loss.
    """
    g = torch.Generator().manual_seed(derive_seed(settings.val_seed, "validation"))
    y, m2 = draw_noisy(data.coefficients, g, settings.sigma, settings.m0_range, distribution=settings.m0_distribution)
    x = normalize_inputs(y, settings.normalization)
    crb = data.crb * crb_scale(settings.sigma, m0_abs2=m2)[:, None]
    out = ValidationSet(x.to(device), data.targets.to(device), crb.to(device))
    if realizations is not None:
        gk = torch.Generator().manual_seed(derive_seed(settings.val_seed, "validation_realizations"))
        yk, mk = draw_noisy(data.coefficients, gk, settings.sigma, settings.m0_range, realizations,
                            settings.m0_distribution)
        out.x_multi = normalize_inputs(yk, settings.normalization).to(device)
        out.crb_multi = (data.crb * crb_scale(settings.sigma, m0_abs2=mk)[:, None]).to(device)
    return out
