"""Where does the paper's claim hold?  Estimators against the CRB over a range of SNRs.

The paper evaluates at one SNR (|M0| / sigma = 50).  This sweep draws the test set from the prior
(``results/simulate_dataset/test.h5``) and, for every SNR s of a list, adds noise with
``|M0| = s * sigma`` (uniform phase) in K realizations per sample:

    y_ik = M0_ik c_i + sigma (n_re + 1j n_im),    CRB_i(s) = CRB_i(M0 = 1, sigma = 1) / s^2.

Per estimator, SNR and parameter, over the samples i (with the per-sample statistics of
:func:`crbnn.evaluate.grid.point_statistics` over the K realizations):

* ``mean_loss``: mean_i of mean_k (theta_hat - theta)^2 / CRB_i  (1 for an efficient unbiased estimator);
* ``median_loss``: median_i of the same per-sample loss;
* ``median_abs_bias``: median_i |mean_k theta_hat - theta| / sqrt(CRB_i);
* ``median_std``: median_i std_k(theta_hat) / sqrt(CRB_i)  (sample std, ddof = 1: for K = 10 the
  median of an efficient estimator's ratio is about 0.96, not 1);

and the same for the pseudo-parameter ``mean``, whose per-sample values are the means over the
estimated parameters of the per-sample values above (so ``mean_loss`` of ``mean`` is the loss averaged
over parameters and samples); each with a percentile bootstrap interval over the samples (``<name>_lo``, ``<name>_hi``: 2.5 % and
97.5 %, ``n_boot`` resamples of the samples with replacement, seeded).

Each estimator runs on its own subset (NLLS is slow: the first ``nlls_samples`` samples and
``nlls_realizations`` realizations).  So that NLLS and the networks are compared on the same data,
``paired_<name>`` (and its interval) repeats every statistic on the subset that all estimators saw
(the leading ``paired_samples`` samples and ``paired_realizations`` realizations, attrs).  The
per-sample values behind the statistics are kept too (``sample_normalized_loss``,
``sample_bias_over_sqrt_crb``, ``sample_std_over_sqrt_crb``, dims ``(estimator, snr, sample,
parameter)``, NaN where an estimator did not run), so that estimators can be compared sample by
sample (:mod:`crbnn.evaluate.claims`).  ``bias_floor`` (estimator, snr, parameter) is the median
|bias|/sqrt(CRB) that noise alone gives an unbiased estimator with the measured std over K
realizations (:func:`crbnn.evaluate.grid.bias_noise_floor`): a median |bias| near it is noise, not bias.

File ``results/evaluate_snr_sweep/<set>/sweep.nc`` (``<set>``: ``dev`` or ``final``): these variables
with dims ``(estimator, snr, parameter)``, ``time_per_voxel`` (estimator, snr), ``n_samples`` and
``n_realizations`` (estimator), attrs ``sigma``, ``seed``, ``n_boot``, ``paired_samples``,
``paired_realizations``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from crbnn.evaluate.grid import Estimator, bias_noise_floor, noisy_coefficients, point_statistics
from crbnn.common.seeds import stream_seed
from crbnn.physics.noise import crb_scale

#: Coverage of the bootstrap intervals (percent): the 2.5 and 97.5 percentiles.
INTERVAL_PERCENT = 95
#: Sweep statistics and how each aggregates the per-sample values.
SWEEP_STATISTICS: tuple[str, ...] = ("mean_loss", "median_loss", "median_abs_bias", "median_std")
#: Per-sample values kept in the sweep file (dims estimator, snr, sample, estimated parameter).
SAMPLE_VARIABLES: tuple[str, ...] = ("sample_normalized_loss", "sample_bias_over_sqrt_crb", "sample_std_over_sqrt_crb")


@dataclass
class SweepEstimator:
    """An estimator and the subset of the sweep it runs on.

    ``max_samples`` / ``max_realizations``: the leading samples / realizations it sees (None: all).
    ``with_m0``: call ``estimate(y, M0)`` with the true complex M0 of every row (oracle estimators of
    tests, such as least squares on a linear model); otherwise ``estimate(y)``.
    """

    estimate: Estimator | Callable[[NDArray[np.complex128], NDArray[np.complex128]], NDArray[np.float64]]
    max_samples: int | None = None
    max_realizations: int | None = None
    with_m0: bool = False


def per_sample_values(stats: Mapping[str, NDArray[np.float64]]) -> dict[str, NDArray[np.float64]]:
    """Per-sample values [n, E + 1] behind each sweep statistic, from :func:`point_statistics` [n, E];
    the last column is the mean over the E parameters (the pseudo-parameter ``mean``)."""
    raw = {
        "mean_loss": stats["normalized_loss"],
        "median_loss": stats["normalized_loss"],
        "median_abs_bias": np.abs(stats["bias_over_sqrt_crb"]),
        "median_std": stats["std_over_sqrt_crb"],
    }
    return {k: np.concatenate([v, v.mean(axis=1, keepdims=True)], axis=1) for k, v in raw.items()}


def _aggregate(name: str, x: NDArray[np.float64], axis: int) -> NDArray[np.float64]:
    return np.nanmean(x, axis=axis) if name == "mean_loss" else np.nanmedian(x, axis=axis)


def bootstrap_statistics(
    per: Mapping[str, NDArray[np.float64]], rng: np.random.Generator, n_boot: int = 1000
) -> dict[str, tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]]:
    """``{statistic: (value [P], lo [P], hi [P])}`` from per-sample values [n, P] (:func:`per_sample_values`).

    ``value`` aggregates over the samples (mean or median, :data:`SWEEP_STATISTICS`); ``lo``/``hi``
    are the 2.5 / 97.5 percentiles of the same aggregate over ``n_boot`` resamples of the samples.

    >>> s = {"normalized_loss": np.ones((50, 1)), "bias_over_sqrt_crb": np.zeros((50, 1)),
    ...      "std_over_sqrt_crb": np.ones((50, 1))}
    >>> out = bootstrap_statistics(per_sample_values(s), np.random.default_rng(0), 100)
    >>> [float(out[k][0][0]) for k in SWEEP_STATISTICS], float(out["mean_loss"][1][1])
    ([1.0, 1.0, 0.0, 1.0], 1.0)
    """
    n = next(iter(per.values())).shape[0]
    idx = rng.integers(0, n, size=(n_boot, n))
    out = {}
    for name in SWEEP_STATISTICS:
        x = per[name]
        value = _aggregate(name, x, axis=0)
        boot = _aggregate(name, x[idx], axis=1) if n_boot > 0 else value[None]  # [n_boot, P]
        tail = (100 - INTERVAL_PERCENT) / 2
        out[name] = (value, np.nanpercentile(boot, tail, axis=0), np.nanpercentile(boot, 100 - tail, axis=0))
    return out


def evaluate_snr_sweep(
    coefficients: NDArray[np.complex128],
    truth: NDArray[np.float64],
    crb: NDArray[np.float64],
    estimated: Sequence[str],
    estimators: Mapping[str, SweepEstimator],
    *,
    snrs: Sequence[float],
    sigma: float,
    realizations: int,
    seed: int,
    random_phase: bool = True,
    n_boot: int = 1000,
    log: Callable[[str], None] | None = None,
) -> Any:
    """Run every estimator on the same noisy data at every SNR; return an ``xarray.Dataset``.

    ``coefficients`` [n, R] noise-free at M0 = 1; ``truth`` [n, E] of the ``estimated`` parameters;
    ``crb`` [n, E] at M0 = 1, sigma = 1.  See the module docstring for the noise and the variables.
    """
    import xarray as xr

    c = np.asarray(coefficients, dtype=np.complex128)
    truth = np.asarray(truth, dtype=np.float64)
    crb = np.asarray(crb, dtype=np.float64)
    n, E = truth.shape
    if c.shape[0] != n or crb.shape != (n, E):
        raise ValueError(f"coefficients {c.shape}, truth {truth.shape} and crb {crb.shape} disagree")
    names = list(estimators)
    shape = (len(names), len(snrs), E + 1)
    data = {f"{pre}{s}{suffix}": np.full(shape, np.nan)
            for pre in ("", "paired_") for s in SWEEP_STATISTICS for suffix in ("", "_lo", "_hi")}
    floor = np.full((len(names), len(snrs), E), np.nan)
    samples = {v: np.full((len(names), len(snrs), n, E), np.nan) for v in SAMPLE_VARIABLES}
    tpv = np.full(shape[:2], np.nan)
    n_samples = np.zeros(len(names), dtype=np.int64)
    n_real = np.zeros(len(names), dtype=np.int64)
    for je, name in enumerate(names):
        spec = estimators[name]
        n_samples[je] = n if spec.max_samples is None else min(int(spec.max_samples), n)
        n_real[je] = realizations if spec.max_realizations is None else min(int(spec.max_realizations), realizations)
    m_pair, k_pair = (int(n_samples.min()), int(n_real.min())) if names else (0, 0)
    for js, snr in enumerate(snrs):
        if snr <= 0:
            raise ValueError(f"SNR must be > 0, got {snr}")
        m0_abs = float(snr) * float(sigma)
        y, m0 = noisy_coefficients(c, realizations, m0_abs, sigma, stream_seed(seed, js), random_phase)
        crb_scaled = crb * crb_scale(sigma, m0_abs)
        for je, name in enumerate(names):
            spec = estimators[name]
            m, k = int(n_samples[je]), int(n_real[je])
            yy = np.ascontiguousarray(y[:m, :k].reshape(-1, c.shape[1]))
            t0 = time.perf_counter()
            if spec.with_m0:
                est = spec.estimate(yy, m0[:m, :k].reshape(-1))  # type: ignore[call-arg]
            else:
                est = spec.estimate(yy)  # type: ignore[call-arg]
            dt = time.perf_counter() - t0
            est = np.asarray(est, dtype=np.float64)
            if est.shape != (m * k, E):
                raise ValueError(f"estimator {name!r} returned shape {est.shape}, expected {(m * k, E)}")
            est = est.reshape(m, k, E)
            st = point_statistics(est, truth[:m], crb_scaled[:m])
            rng = np.random.default_rng(stream_seed(seed + 1, js * 1000 + je))
            for s, (v, lo, hi) in bootstrap_statistics(per_sample_values(st), rng, n_boot).items():
                data[s][je, js], data[f"{s}_lo"][je, js], data[f"{s}_hi"][je, js] = v, lo, hi
            floor[je, js] = bias_noise_floor(st["std_over_sqrt_crb"], k)
            for v in SAMPLE_VARIABLES:
                samples[v][je, js, :m] = st[v.removeprefix("sample_")]
            if m_pair > 0 and k_pair > 0:
                sp = point_statistics(est[:m_pair, :k_pair], truth[:m_pair], crb_scaled[:m_pair])
                rng = np.random.default_rng(stream_seed(seed + 2, js * 1000 + je))
                for s, (v, lo, hi) in bootstrap_statistics(per_sample_values(sp), rng, n_boot).items():
                    data[f"paired_{s}"][je, js] = v
                    data[f"paired_{s}_lo"][je, js], data[f"paired_{s}_hi"][je, js] = lo, hi
            tpv[je, js] = dt / max(m * k, 1)
            if log is not None:
                log(f"SNR {snr:g} {name}: {m} samples x {k} realizations in {dt:.2f} s, mean loss "
                    f"{np.round(data['mean_loss'][je, js], 3).tolist()}")
    dims = ("estimator", "snr", "parameter")
    sdims = ("estimator", "snr", "sample", "estimated")
    ds = xr.Dataset(
        {**{k: (dims, v, {"units": "1"}) for k, v in data.items()},
         "bias_floor": (dims, np.concatenate([floor, np.nanmean(floor, axis=2, keepdims=True)], axis=2),
                        {"units": "1"}),
         **{v: (sdims, a, {"units": "1"}) for v, a in samples.items()},
         "time_per_voxel": (("estimator", "snr"), tpv, {"units": "s"}),
         "n_samples": (("estimator",), n_samples),
         "n_realizations": (("estimator",), n_real)},
        coords={"estimator": names, "snr": np.asarray(snrs, dtype=np.float64), "parameter": [*estimated, "mean"],
                "sample": np.arange(n), "estimated": list(estimated)},
    )
    ds.attrs.update({"sigma": float(sigma), "seed": int(seed), "n_boot": int(n_boot),
                     "paired_samples": m_pair, "paired_realizations": k_pair,
                     "random_phase": int(bool(random_phase)), "realizations": int(realizations),
                     "description": "estimators against the CRB over SNRs; see crbnn.evaluate.snr_sweep"})
    return ds


def sweep_table(ds: Any, statistics: Sequence[str] = SWEEP_STATISTICS) -> Any:
    """Long table (``pandas.DataFrame``) of a sweep: one row per estimator, SNR and parameter
    (``mean`` included), with each statistic and its bootstrap interval, the same on the paired
    subset (``paired_<statistic>``) and the bias noise floor."""
    import pandas as pd

    rows = []
    for e in ds["estimator"].values:
        for s in ds["snr"].values:
            for p in ds["parameter"].values:
                row: dict[str, Any] = {"estimator": str(e), "snr": float(s), "parameter": str(p),
                                       "n_samples": int(ds["n_samples"].sel(estimator=e))}
                for pre in ("", "paired_"):
                    for st in statistics:
                        for suffix in ("", "_lo", "_hi"):
                            name = f"{pre}{st}{suffix}"
                            if name in ds:
                                row[name] = float(ds[name].sel(estimator=e, snr=s, parameter=p))
                if "bias_floor" in ds:
                    row["bias_floor"] = float(ds["bias_floor"].sel(estimator=e, snr=s, parameter=p))
                rows.append(row)
    return pd.DataFrame(rows)
