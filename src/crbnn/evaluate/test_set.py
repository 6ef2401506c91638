"""The test set: one noisy realization per sample, CRB-normalized errors of every estimator."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from crbnn.common.seeds import derive_seed
from crbnn.evaluate.grid import Estimator
from crbnn.learn.training_data import TrainingData, draw_noisy
from crbnn.learn.model_file import check_regime, predict
from crbnn.learn.nets import EstimatorNet
from crbnn.physics.noise import add_noise, crb_scale, draw_m0


def noisy_test_set(
    coefficients: NDArray[np.complex128], m0_range: Sequence[float], sigma: float, seed: int
) -> tuple[NDArray[np.complex128], NDArray[np.complex128]]:
    """One noisy realization per sample with |M0| ~ U(m0_range) and a uniform phase: ``(y [n, R], M0 [n])``.

    >>> y, m0 = noisy_test_set(np.ones((3, 2), complex), (0.1, 1.0), 0.0, seed=0)
    >>> bool(np.all((np.abs(m0) >= 0.1) & (np.abs(m0) <= 1.0))), bool(np.allclose(y, m0[:, None]))
    (True, True)
    """
    c = np.asarray(coefficients, dtype=np.complex128)
    rng = np.random.default_rng(seed)
    n, r = c.shape
    m0 = draw_m0(rng, (n,), m0_range)
    return add_noise(rng, m0[:, None] * c, sigma), m0


def normalized_test_errors(
    y: NDArray[np.complex128],
    M0: NDArray[np.complex128],
    targets: NDArray[np.float64],
    crb: NDArray[np.float64],
    estimated: Sequence[str],
    estimators: Mapping[str, tuple[Estimator, int]],
    sigma: float,
) -> Any:
    """Per-sample normalized errors (est - true)/sqrt(CRB * sigma^2/|M0|^2) as an ``xarray.Dataset``.

    ``estimators`` maps name -> (estimator, number of leading samples it runs on); the rest is NaN.
    Variables: ``normalized_error`` (estimator, sample, parameter), ``estimate`` (same),
    ``truth`` and ``sqrt_crb`` (sample, parameter), ``M0_abs`` (sample), ``time_per_voxel``
    (estimator, s) and ``n_samples`` (estimator).
    """
    import xarray as xr

    n, E = targets.shape
    sqrt_crb = np.sqrt(crb * crb_scale(sigma, M0)[:, None])
    names = list(estimators)
    est = np.full((len(names), n, E), np.nan)
    tpv = np.full(len(names), np.nan)
    n_s = np.zeros(len(names), dtype=np.int64)
    for j, name in enumerate(names):
        f, m = estimators[name]
        m = min(int(m), n)
        if m == 0:
            continue
        t0 = time.perf_counter()
        est[j, :m] = np.asarray(f(y[:m]), dtype=np.float64)
        tpv[j] = (time.perf_counter() - t0) / m
        n_s[j] = m
    ds = xr.Dataset(
        {
            "normalized_error": (("estimator", "sample", "parameter"), (est - targets[None]) / sqrt_crb[None]),
            "estimate": (("estimator", "sample", "parameter"), est),
            "truth": (("sample", "parameter"), targets),
            "sqrt_crb": (("sample", "parameter"), sqrt_crb),
            "M0_abs": (("sample",), np.abs(M0)),
            "time_per_voxel": (("estimator",), tpv, {"units": "s"}),
            "n_samples": (("estimator",), n_s),
        },
        coords={"estimator": names, "parameter": list(estimated), "sample": np.arange(n)},
    )
    ds.attrs.update({"sigma": float(sigma), "description": "per-sample CRB-normalized errors on the test set"})
    return ds



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
    check_regime(meta, list(data.estimated), list(data.nuisance), str(meta.get("loss")), data.path or "the test set")
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
        crb = data.crb[i : i + chunk].double() * crb_scale(sigma, m0_abs2=m2.double())[:, None]
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
