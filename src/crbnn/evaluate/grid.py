"""Grid evaluation of estimators: bias, standard deviation and CRB-normalized loss.

Every estimator sees the same noisy data.  For grid point i with noise-free coefficients c_i
(simulated at M0 = 1, sigma = 1) and realization k,

    y_ik = M0_ik * c_i + sigma * (n_re + 1j * n_im),    M0_ik = |M0| * exp(1j * phi_ik),

with n_re, n_im ~ N(0, 1) and phi_ik ~ U(0, 2 pi) (or 0), all from one seeded generator.  The
CRB of the estimated parameters scales to CRB_i * sigma^2 / |M0|^2.

Per estimator e, estimated parameter p and grid point i (over the realizations k):

* ``mean``  = mean_k theta_hat,  ``bias`` = mean - theta,  ``std`` = sample std (ddof = 1),
* ``sqrt_crb`` = sqrt(scaled CRB),  ``std_over_sqrt_crb``,  ``bias_over_sqrt_crb``,
* ``normalized_loss`` = mean_k (theta_hat - theta)^2 / CRB  (= 1 for an efficient unbiased estimator).

File ``results/evaluate_grid/<grid>.nc`` (NetCDF-4 via xarray, engine h5netcdf): the variables
above with dims ``(estimator, parameter, <axis_1>, <axis_2>, ...)`` (units in attrs), ``truth``
(parameter, axes), coordinates ``estimator``, ``parameter`` and one per grid axis (its values),
per-estimator ``time_per_voxel`` (s, wall time of the estimator call / number of voxels),
``n_realizations`` and ``n_points`` (how many realizations and grid points it was evaluated on;
points it skipped are NaN), and root attrs ``M0_abs``, ``sigma``, ``seed``, ``random_phase``,
``realizations``, ``grid``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from crbnn.common.parameters import TISSUE_PARAMETERS
from crbnn.physics.noise import add_noise, crb_scale, draw_m0

#: An estimator maps noisy coefficients [m, R] complex128 to estimates [m, E] float64 (SI units).
Estimator = Callable[[NDArray[np.complex128]], NDArray[np.float64]]


STATISTICS: tuple[str, ...] = (
    "mean",
    "bias",
    "std",
    "sqrt_crb",
    "std_over_sqrt_crb",
    "bias_over_sqrt_crb",
    "normalized_loss",
)


def noisy_coefficients(
    coefficients: NDArray[np.complex128],
    realizations: int,
    M0_abs: float,
    sigma: float,
    seed: int,
    random_phase: bool = True,
) -> tuple[NDArray[np.complex128], NDArray[np.complex128]]:
    """Noisy realizations of noise-free coefficients simulated at M0 = 1.

    Returns ``(y [n, K, R] complex128, M0 [n, K] complex128)`` with ``y = M0 * c + sigma * (n_re + 1j n_im)``.
    The random numbers depend only on ``seed`` and the shapes, so every estimator sees the same data.

    >>> y, m0 = noisy_coefficients(np.ones((2, 3), complex), 4, 0.5, 0.0, seed=1)
    >>> y.shape, bool(np.allclose(np.abs(m0), 0.5)), bool(np.allclose(y, m0[..., None]))
    ((2, 4, 3), True, True)
    """
    if realizations < 1:
        raise ValueError(f"realizations must be >= 1, got {realizations}")
    if M0_abs <= 0 or sigma < 0:
        raise ValueError(f"need M0_abs > 0 and sigma >= 0, got {M0_abs}, {sigma}")
    c = np.asarray(coefficients, dtype=np.complex128)
    n, r = c.shape
    rng = np.random.default_rng(seed)
    m0 = draw_m0(rng, (n, realizations), float(M0_abs), random_phase)
    y = add_noise(rng, m0[..., None] * c[:, None, :], sigma)
    return y, m0


def point_statistics(
    estimates: NDArray[np.float64], truth: NDArray[np.float64], crb: NDArray[np.float64]
) -> dict[str, NDArray[np.float64]]:
    """Statistics over realizations: ``estimates`` [n, K, E], ``truth`` [n, E], scaled ``crb`` [n, E].

    Returns a dict of [n, E] arrays named like :data:`STATISTICS` (std with ddof = 1, NaN for K = 1).

    >>> s = point_statistics(np.array([[[1.0], [3.0]]]), np.array([[1.0]]), np.array([[4.0]]))
    >>> {k: float(v[0, 0]) for k, v in s.items()}  # doctest: +NORMALIZE_WHITESPACE
    {'mean': 2.0, 'bias': 1.0, 'std': 1.414..., 'sqrt_crb': 2.0, 'std_over_sqrt_crb': 0.707...,
     'bias_over_sqrt_crb': 0.5, 'normalized_loss': 0.5}
    """
    est = np.asarray(estimates, dtype=np.float64)
    if est.ndim != 3:
        raise ValueError(f"estimates must be [n, K, E], got shape {est.shape}")
    k = est.shape[1]
    mean = est.mean(axis=1)
    bias = mean - truth
    std = est.std(axis=1, ddof=1) if k > 1 else np.full_like(mean, np.nan)
    sqrt_crb = np.sqrt(crb)
    loss = ((est - truth[:, None, :]) ** 2).mean(axis=1) / crb
    return {
        "mean": mean,
        "bias": bias,
        "std": std,
        "sqrt_crb": sqrt_crb,
        "std_over_sqrt_crb": std / sqrt_crb,
        "bias_over_sqrt_crb": bias / sqrt_crb,
        "normalized_loss": loss,
    }


#: Median of |Z| for a standard normal Z (scipy.stats.norm.ppf(0.75)): the median |mean - truth| of
#: an unbiased estimator whose mean over K realizations has standard deviation std / sqrt(K).
MEDIAN_ABS_NORMAL = 0.6744897501960817


def bias_noise_floor(std_over_sqrt_crb: NDArray[np.float64], realizations: int) -> NDArray[np.float64]:
    """The median |bias|/sqrt(CRB) that noise alone gives an unbiased estimator: per parameter
    ``0.674 * median_i(std_i / sqrt(CRB_i)) / sqrt(K)`` over the points i (``std_over_sqrt_crb``
    [n, E], K realizations each).  With K = 20 and an efficient estimator it is 0.15; a measured
    median |bias|/sqrt(CRB) near it says nothing about bias.

    >>> float(bias_noise_floor(np.ones((10, 1)), 20)[0]).__round__(3)
    0.151
    """
    x = np.asarray(std_over_sqrt_crb, dtype=np.float64)
    return MEDIAN_ABS_NORMAL * np.nanmedian(x, axis=0) / np.sqrt(max(int(realizations), 1))


@dataclass
class EstimatorSpec:
    """An estimator and the (documented) subset it runs on.

    ``max_realizations``: use only the first this-many realizations (None: all).
    ``stride``: evaluate only grid points whose multi-index is divisible by ``stride`` along every
    axis (1: all points); the other points are NaN.
    """

    estimate: Estimator
    max_realizations: int | None = None
    stride: int = 1
    time_per_voxel: float | None = None  # s; overrides the measured wall time (precomputed estimates)
    info: dict[str, Any] = field(default_factory=dict)


class Precomputed:
    """An estimator that returns stored estimates of exactly the data they were computed from.

    Used for NLLS, which runs in its own (cached) rule: ``data_sha256`` is
    ``crbnn.common.io.sha256_arrays`` of the noisy coefficients that were fitted; calling with other data
    raises ValueError (the noise settings of the fit and the evaluation differ).
    """

    def __init__(self, estimates: NDArray[np.float64], data_sha256: str) -> None:
        self.estimates = np.asarray(estimates, dtype=np.float64)
        self.data_sha256 = data_sha256

    def __call__(self, y: NDArray[np.complex128]) -> NDArray[np.float64]:
        from crbnn.common.io import sha256_arrays

        got = sha256_arrays(np.ascontiguousarray(y, dtype=np.complex128))
        if got != self.data_sha256:
            raise ValueError("stored estimates were computed from different noisy data "
                             "(noise seed, |M0|, sigma, realizations or subset differ): rerun the fit")
        return self.estimates


def point_mask(shape: tuple[int, ...], stride: int) -> NDArray[np.bool_]:
    idx = np.indices(shape).reshape(len(shape), -1)
    return np.all(idx % max(stride, 1) == 0, axis=0)


def evaluate_grid(
    coefficients: NDArray[np.complex128],
    parameters: NDArray[np.float64],
    crb: NDArray[np.float64],
    estimated: Sequence[str],
    axes: Sequence[tuple[str, NDArray[np.float64]]],
    estimators: Mapping[str, EstimatorSpec | Estimator],
    *,
    realizations: int,
    M0_abs: float,
    sigma: float,
    seed: int,
    random_phase: bool = True,
    parameter_names: Sequence[str] = TISSUE_PARAMETERS,
    units: Mapping[str, str] | None = None,
    common_realizations: bool = True,
    log: Callable[[str], None] | None = None,
) -> Any:
    """Run every estimator on the same noisy grid data and return an ``xarray.Dataset``.

    With ``common_realizations`` (the default) every estimator's statistics use the same leading
    realizations: the fewest that any estimator ran on (NLLS may fit a subset), so that the
    estimators are compared on the same data and their biases have the same noise floor.

    ``coefficients`` [n, R] (M0 = 1, noise-free), ``parameters`` [n, 7] (columns
    ``parameter_names``), ``crb`` [n, E] at M0 = 1 and sigma = 1 for the ``estimated`` parameters,
    ``axes`` the grid axes ``[(name, values), ...]`` with n = prod(len(values)) in C order.
    See the module docstring for the variables and the noise model.
    """
    import xarray as xr

    shape = tuple(len(v) for _, v in axes)
    n = int(np.prod(shape))
    c = np.asarray(coefficients, dtype=np.complex128)
    if c.shape[0] != n or parameters.shape[0] != n or crb.shape[0] != n:
        raise ValueError(f"grid of shape {shape} needs {n} rows; got {c.shape[0]}, {parameters.shape[0]}, {crb.shape[0]}")
    cols = [list(parameter_names).index(p) for p in estimated]
    truth = np.asarray(parameters, dtype=np.float64)[:, cols]
    crb_scaled = np.asarray(crb, dtype=np.float64) * crb_scale(sigma, M0_abs)
    y, _ = noisy_coefficients(c, realizations, M0_abs, sigma, seed, random_phase)
    E = len(estimated)

    names = list(estimators)
    specs = {name: spec if isinstance(spec, EstimatorSpec) else EstimatorSpec(spec) for name, spec in estimators.items()}
    own_k = {name: realizations if spec.max_realizations is None else min(spec.max_realizations, realizations)
             for name, spec in specs.items()}
    k_common = min(own_k.values()) if own_k else realizations
    stats = {s: np.full((len(names), n, E), np.nan) for s in STATISTICS}
    t_voxel = np.full(len(names), np.nan)
    n_real = np.zeros(len(names), dtype=np.int64)
    n_pts = np.zeros(len(names), dtype=np.int64)
    for j, name in enumerate(names):
        spec = specs[name]
        k = own_k[name]
        mask = point_mask(shape, spec.stride)
        yy = y[mask, :k, :].reshape(-1, c.shape[1])
        t0 = time.perf_counter()
        est = np.asarray(spec.estimate(yy), dtype=np.float64)
        dt = time.perf_counter() - t0
        if est.shape != (yy.shape[0], E):
            raise ValueError(f"estimator {name!r} returned shape {est.shape}, expected {(yy.shape[0], E)}")
        if common_realizations:  # every estimator's statistics over the same realizations
            est = est.reshape(int(mask.sum()), k, E)[:, :k_common].reshape(-1, E)
            k = k_common
        st = point_statistics(est.reshape(int(mask.sum()), k, E), truth[mask], crb_scaled[mask])
        for s in STATISTICS:
            stats[s][j, mask] = st[s]
        t_voxel[j] = dt / yy.shape[0] if spec.time_per_voxel is None else spec.time_per_voxel
        n_real[j], n_pts[j] = k, int(mask.sum())
        if log is not None:
            log(f"{name}: {yy.shape[0]} voxels in {dt:.2f} s ({t_voxel[j] * 1e3:.4f} ms/voxel), "
                f"median loss {np.nanmedian(stats['normalized_loss'][j], axis=0).round(3).tolist()}")

    units = dict(units or {})
    axis_names = [a for a, _ in axes]
    dims = ("estimator", "parameter", *axis_names)
    unit_of = {
        "mean": "parameter units", "bias": "parameter units", "std": "parameter units",
        "sqrt_crb": "parameter units", "std_over_sqrt_crb": "1", "bias_over_sqrt_crb": "1",
        "normalized_loss": "1",
    }
    data_vars: dict[str, Any] = {}
    for s in STATISTICS:
        arr = np.moveaxis(stats[s], 2, 1).reshape(len(names), E, *shape)
        data_vars[s] = (dims, arr, {"units": unit_of[s]})
    data_vars["truth"] = (("parameter", *axis_names), truth.T.reshape(E, *shape), {"units": "parameter units"})
    data_vars["time_per_voxel"] = (("estimator",), t_voxel, {"units": "s"})
    data_vars["n_realizations"] = (("estimator",), n_real)
    data_vars["n_points"] = (("estimator",), n_pts)
    coords: dict[str, Any] = {"estimator": names, "parameter": list(estimated)}
    for a, v in axes:
        coords[a] = (a, np.asarray(v, dtype=np.float64), {"units": units.get(a, "")})
    ds = xr.Dataset(data_vars, coords=coords)
    ds["parameter_units"] = (("parameter",), [units.get(p, "") for p in estimated])
    ds.attrs.update({
        "M0_abs": float(M0_abs), "sigma": float(sigma), "seed": int(seed),
        "random_phase": int(bool(random_phase)), "realizations": int(realizations),
        "description": "per-estimator statistics over noise realizations; see crbnn.evaluate.grid",
    })
    return ds


def grid_subset(
    coefficients: NDArray[np.complex128],
    shape: tuple[int, ...],
    *,
    realizations: int,
    M0_abs: float,
    sigma: float,
    seed: int,
    random_phase: bool = True,
    max_realizations: int | None = None,
    stride: int = 1,
) -> tuple[NDArray[np.complex128], NDArray[np.bool_], int]:
    """The noisy data an :class:`EstimatorSpec` with this subset sees inside :func:`evaluate_grid`.

    Returns ``(y [m * k, R], point mask [n], k)``; lets a separate job (NLLS) fit exactly those data.
    """
    y, _ = noisy_coefficients(coefficients, realizations, M0_abs, sigma, seed, random_phase)
    k = realizations if max_realizations is None else min(max_realizations, realizations)
    mask = point_mask(shape, stride)
    return np.ascontiguousarray(y[mask, :k, :].reshape(-1, y.shape[2])), mask, k


def summary_table(grids: Mapping[str, Any], test: Any | None = None) -> Any:
    """Headline table (``pandas.DataFrame``): per grid, estimator and parameter the mean normalized
    loss, median |bias|/sqrt(CRB), median std/sqrt(CRB) and time per voxel (s); plus, where ``test``
    (``results/evaluate_test_set/errors.nc``) is given, the test-set mean squared normalized error
    ``test_mean_sq_normalized_error``: mean of (estimate - true)^2 / CRB over the test samples with
    ONE noise draw each, for every estimator including NLLS.  It is not the "test-set CRB-normalized
    loss" of ``results/evaluate_network/<loss>.json`` (``crb_loss``: networks only, averaged over
    ``train.test.realizations`` noise draws per sample)."""
    import pandas as pd

    frames = []
    for g, ds in grids.items():
        t = summarize_grid(ds)
        t.insert(0, "grid", g)
        frames.append(t)
    table = pd.concat(frames, ignore_index=True)
    if test is not None:
        loss = (test["normalized_error"] ** 2).mean(dim="sample", skipna=True)
        lookup = {(str(e), str(p)): float(loss.sel(estimator=e, parameter=p))
                  for e in test["estimator"].values for p in test["parameter"].values}
        table["test_mean_sq_normalized_error"] = [lookup.get((e, p), np.nan) for e, p in zip(table["estimator"], table["parameter"])]
    return table


def write_netcdf(path: Any, ds: Any) -> None:
    """Write an ``xarray.Dataset`` atomically as NetCDF-4 with engine h5netcdf."""
    from crbnn.common.io import atomic_write

    with atomic_write(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")


def read_netcdf(path: Any) -> Any:
    """Load a NetCDF file written by :func:`write_netcdf` fully into memory."""
    from crbnn.common.io import open_intermediate

    with open_intermediate(path, netcdf=True) as ds:  # a damaged file names itself and its rebuild command
        return ds.load()


def summarize_grid(ds: Any) -> Any:
    """Headline numbers of one grid per estimator and parameter (a ``pandas.DataFrame``).

    Columns: ``estimator, parameter, mean_normalized_loss, median_abs_bias_over_sqrt_crb,
    median_std_over_sqrt_crb, time_per_voxel_s`` (NaN points skipped).
    """
    import pandas as pd

    rows = []
    axes = [d for d in ds["normalized_loss"].dims if d not in ("estimator", "parameter")]
    for e in ds["estimator"].values.tolist():
        for p in ds["parameter"].values.tolist():
            sel = ds.sel(estimator=e, parameter=p)
            rows.append({
                "estimator": e,
                "parameter": p,
                "mean_normalized_loss": float(sel["normalized_loss"].mean(dim=axes, skipna=True)),
                "median_abs_bias_over_sqrt_crb": float(np.abs(sel["bias_over_sqrt_crb"]).median(dim=axes, skipna=True)),
                "median_std_over_sqrt_crb": float(sel["std_over_sqrt_crb"].median(dim=axes, skipna=True)),
                "time_per_voxel_s": float(sel["time_per_voxel"]),
            })
    return pd.DataFrame(rows)


def network_estimator(
    path: Any, basis_sha256: str | None = None, sequence_sha256: str | None = None, batch_size: int = 65536,
    data_attrs: Mapping[str, Any] | None = None, data_path: Any = "the data set",
) -> tuple[Estimator, list[str]]:
    """A trained network (``results/train_network/<loss>/model.pt``) as an :data:`Estimator`.

    Returns ``(estimate, estimated parameter names)``; the network must have been trained with the
    same basis and pulse train (hashes checked by ``crbnn.learn.model_file.load_model``) and, when
    ``data_attrs`` (the attributes of a simulated data set) are given, in the same regime: the same
    estimated and nuisance parameters in the same order (``crbnn.learn.model_file.check_regime``).
    """
    from crbnn.learn.model_file import check_regime, load_model, predict

    model = load_model(path, expect_basis_sha256=basis_sha256, expect_sequence_sha256=sequence_sha256)
    if data_attrs is not None:
        check_regime(model.meta, list(data_attrs["estimated"]), list(data_attrs.get("nuisance", [])), str(path),
                     str(data_path))

    def estimate(y: NDArray[np.complex128]) -> NDArray[np.float64]:
        import torch

        with torch.no_grad():
            return np.asarray(predict(model, y, batch_size=batch_size), dtype=np.float64)

    return estimate, list(model.meta["estimated"])
