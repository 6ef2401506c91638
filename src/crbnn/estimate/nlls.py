"""Non-linear least-squares (NLLS) reference estimator: the public API of :mod:`crbnn.estimate`.

NLLS fits y = M0 * g(theta) (complex M0 in closed form, variable projection) within box bounds with a
batched Levenberg-Marquardt (:mod:`crbnn.estimate.varpro`) of the paper's model
(:mod:`crbnn.estimate.paper_model`).  Start: a coarse dictionary match (:mod:`crbnn.estimate.dictionary`;
nuisance parameters not in the dictionary at nominal values) or any given estimate (for example a
network's).  With ``starts`` > 1 the fit is repeated from the next-best dictionary starts (atoms of
distinct omega0 values with ``distinct``; only for voxels whose cost exceeds ``restart_above`` times the
median cost, when given) and the lowest cost wins: the cost of this model has local minima in
(omega0, B1) for |omega0| near pi/TR that a single start near omega0 = 0 falls into (docs/nlls.md).

:func:`fit_nlls` is the one-call API used by the workflow and the in vivo maps;
:func:`fit_nlls_with_settings` and :func:`nlls_estimator` take the config section ``nlls``.  The
solver's, model's and dictionary's public names are importable from here too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from crbnn.estimate.dictionary import Dictionary, dictionary_axes, dictionary_start, geometric
from crbnn.estimate.paper_model import FIT_PARAMETERS, PaperModel
from crbnn.estimate.varpro import FitResult, Model, fit_varpro, projected_cost

__all__ = [
    "FIT_PARAMETERS", "Dictionary", "FitResult", "Model", "PaperModel", "best_of", "dictionary_axes",
    "dictionary_start", "fit_multistart", "fit_nlls", "fit_nlls_with_settings", "fit_varpro", "geometric",
    "nlls_estimator", "projected_cost", "settings_dictionary", "worker_processes",
]


def best_of(first: FitResult, other: FitResult, rows: NDArray[np.int64]) -> FitResult:
    """``first`` with its rows ``rows`` replaced by those of ``other`` (one row each) where ``other``
    has the lower cost; iterations add up, the wall times too."""
    out = FitResult(first.theta.copy(), first.M0.copy(), first.cost.copy(), first.cost0.copy(),
                    first.iterations.copy(), first.converged.copy(), first.names, first.time_s + other.time_s)
    better = other.cost < first.cost[rows]
    out.iterations[rows] += other.iterations
    r = rows[better]
    out.theta[r], out.M0[r], out.cost[r] = other.theta[better], other.M0[better], other.cost[better]
    out.converged[r] = other.converged[better]
    return out


def fit_multistart(
    model: Model,
    y: ArrayLike,
    theta0: ArrayLike,
    lower: ArrayLike,
    upper: ArrayLike,
    *,
    restart_above: float | None = None,
    log: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> FitResult:
    """:func:`fit_varpro` from several starts per voxel, keeping the lowest cost.

    ``theta0`` [n, K, P]: the first start is fitted for every voxel; the other K - 1 starts (all in one
    batched call) for every voxel, or with ``restart_above`` only for the voxels whose first fit's cost
    exceeds ``restart_above`` times the median cost of the first fits (the median is the noise level
    of the good fits when most are good: a cost several times it is a wrong basin or a bad voxel).
    ``kwargs`` go to :func:`fit_varpro`.  ``cost0`` is the first start's cost.
    """
    yy = np.asarray(y, dtype=np.complex128)
    th = np.asarray(theta0, dtype=np.float64)
    if th.ndim != 3 or th.shape[0] != len(yy):
        raise ValueError(f"need theta0 [n, K, P] for y [n, R]; got {th.shape} for {yy.shape}")
    res = fit_varpro(model, yy, th[:, 0], lower, upper, log=log, **kwargs)
    K = th.shape[1]
    if K == 1 or len(yy) == 0:
        return res
    if restart_above is None:
        rows = np.arange(len(yy))
    else:
        rows = np.flatnonzero(~(res.cost <= float(restart_above) * np.median(res.cost)))
    if rows.size == 0:
        return res
    extra = fit_varpro(model, np.repeat(yy[rows], K - 1, axis=0), th[rows, 1:].reshape(-1, th.shape[2]),
                       lower, upper, log=log, **kwargs)
    pick = extra.cost.reshape(len(rows), K - 1).argmin(axis=1) + (K - 1) * np.arange(len(rows))
    chosen = FitResult(extra.theta[pick], extra.M0[pick], extra.cost[pick], extra.cost0[pick],
                       extra.iterations.reshape(len(rows), K - 1).sum(axis=1), extra.converged[pick],
                       extra.names, extra.time_s)
    out = best_of(res, chosen, rows)
    if log is not None:
        log(f"NLLS multi-start: {K - 1} more starts for {len(rows)}/{len(yy)} voxels, "
            f"{int((chosen.cost < res.cost[rows]).sum())} improved")
    return out


def fit_nlls(
    coefficients: ArrayLike,
    sequence: Any,
    basis_u: ArrayLike,
    *,
    bounds: Mapping[str, Sequence[float]],
    nominal: Mapping[str, float],
    fit: Sequence[str] = FIT_PARAMETERS,
    start: ArrayLike | Mapping[str, ArrayLike] | None = None,
    dictionary: Mapping[str, Sequence[float]] | Dictionary | None = None,
    starts: int = 1,
    distinct: Sequence[str] = (),
    restart_above: float | None = None,
    max_iter: int = 100,
    ftol: float = 1e-8,
    xtol: float = 1e-10,
    gtol: float = 1e-8,
    batch_size: int = 1024,
    threads: int | None = None,
    r2sl: Any = None,
    device: str | torch.device = "cpu",
    workers: int = 1,
    log: Callable[[str], None] | None = None,
) -> FitResult:
    """Fit the paper's model to subspace coefficients (one row per voxel); the workflow's NLLS.

    Parameters
    ----------
    coefficients : [n, R] complex, measured coefficients ``u^H s`` (any scale and phase; M0 is fitted
        in closed form).  Rows that are all zero are skipped (NaN results).
    sequence, basis_u : the pulse train (``crbnn.data.sequence.Sequence``) and basis [N, R] of the data.
    bounds : ``{name: (lower, upper)}`` in SI units for every fitted parameter (the prior's support;
        T2s and B1 must lie inside the R2sl table).
    nominal : start (and fixed) values of every tissue parameter, SI units.
    fit : the fitted tissue parameters (default all seven; the workflow fits the regime's unknowns,
        ``crbnn.config.regime``); the others are held at ``nominal``.
    start : start values: None (dictionary match, or ``nominal`` without ``dictionary``), an array
        [n, len(fit)], or ``{name: [n] values}`` for some fitted parameters (e.g. a network's m0s,
        T1, T2f; the rest from ``nominal``).  Starts are clipped into the bounds.
    dictionary : ``{name: values}`` axes of the coarse dictionary used when ``start`` is None (or a
        :class:`Dictionary` built for this model, fit and nominal values: reused across calls).
    starts, distinct, restart_above : multi-start from the dictionary (:meth:`Dictionary.match`,
        :func:`fit_multistart`): the ``starts`` best atoms (of distinct values of the ``distinct``
        parameters), the later ones only where the first fit's cost exceeds ``restart_above`` times
        the median (None: everywhere).  Without a dictionary a single start.
    batch_size : voxels per LM chunk (one physics call per iteration per chunk).
    threads : torch intra-op threads for the fit (None: leave as is).
    device : torch device of the model evaluations and the LM algebra ("cpu" or "cuda"; the
        physics must support it); results are returned as NumPy arrays.
    workers : processes for the LM fits on the CPU (see :func:`fit_varpro`); use 1 on a GPU.

    Returns a :class:`FitResult` with ``theta`` columns ``fit`` and the complex ``M0`` in the
    units of ``coefficients``.
    """
    if threads is not None:
        torch.set_num_threads(int(threads))
    t0 = time.perf_counter()
    y = np.asarray(coefficients, dtype=np.complex128)
    if y.ndim != 2:
        raise ValueError(f"coefficients must be [n, R], got shape {y.shape}")
    fit = tuple(fit)
    missing = [p for p in fit if p not in bounds]
    if missing:
        raise ValueError(f"fit_nlls: no bounds for {missing}")
    lower = np.array([float(bounds[p][0]) for p in fit])
    upper = np.array([float(bounds[p][1]) for p in fit])
    model = PaperModel(sequence, basis_u, fit=fit, fixed=nominal, r2sl=r2sl, max_batch=batch_size, device=device)
    valid = np.any(y != 0, axis=1) & np.all(np.isfinite(y), axis=1)
    yv = y[valid]
    n = len(y)
    if start is None:
        if isinstance(dictionary, Dictionary):
            if dictionary.names != fit:
                raise ValueError(f"fit_nlls: the dictionary's parameters {dictionary.names} are not the fitted {fit}")
            theta0 = dictionary.match(yv, starts, distinct)
        elif dictionary:
            theta0 = Dictionary.build(model, dictionary, nominal, fit).match(yv, starts, distinct)
        else:
            theta0 = np.tile([float(nominal[p]) for p in fit], (len(yv), 1))
    elif isinstance(start, Mapping):
        theta0 = np.tile([float(nominal[p]) for p in fit], (len(yv), 1))
        for p, v in start.items():
            theta0[:, fit.index(p)] = np.asarray(v, dtype=np.float64).reshape(-1)[valid]
    else:
        theta0 = np.asarray(start, dtype=np.float64)[valid]
    theta0 = np.clip(np.nan_to_num(theta0, nan=0.0), lower, upper)
    if theta0.ndim == 2:
        theta0 = theta0[:, None, :]
    res = fit_multistart(model, yv, theta0, lower, upper, restart_above=restart_above, names=fit,
                         max_iter=max_iter, ftol=ftol, xtol=xtol, gtol=gtol, batch_size=batch_size, device=device,
                         workers=workers, log=log)

    def expand(a: NDArray[Any], fill: Any) -> NDArray[Any]:
        out = np.full((n, *a.shape[1:]), fill, dtype=a.dtype)
        out[valid] = a
        return out

    result = FitResult(expand(res.theta, np.nan), expand(res.M0, np.nan + 0j), expand(res.cost, np.nan),
                       expand(res.cost0, np.nan), expand(res.iterations, 0), expand(res.converged, False),
                       fit, time.perf_counter() - t0)
    if log is not None:
        log(f"NLLS: {n} voxels ({int(valid.sum())} non-zero) in {result.time_s:.1f} s, "
            f"{1e3 * result.time_s / max(int(valid.sum()), 1):.2f} ms/voxel, {model.n_signals} signals simulated")
    return result


def worker_processes(device: torch.device, threads: int) -> int:
    """Processes for NLLS fits: the job's threads on the CPU, one on a GPU.

    On the CPU the physics scales with processes, not with torch threads: a simulator call with its
    Jacobian at 2 torch threads took 1.6x the CPU time of 1 thread for 8 % less wall time (2-core
    machine, 1024 signals), so an NLLS job keeps its own process at one thread and fits in
    ``threads`` processes of one thread each."""
    return max(1, int(threads)) if torch.device(device).type == "cpu" else 1


def fit_nlls_with_settings(
    coefficients: ArrayLike,
    sequence: Any,
    basis_u: NDArray[np.complex128],
    settings: Mapping[str, Any],
    bounds: Mapping[str, Sequence[float]],
    *,
    r2sl: Any = None,
    device: str | torch.device = "cpu",
    workers: int = 1,
    start: ArrayLike | Mapping[str, ArrayLike] | None = None,
    dictionary: Dictionary | None = None,
    log: Callable[[str], None] | None = None,
) -> FitResult:
    """:func:`fit_nlls` with the solver settings of the config section ``nlls``.

    ``settings`` holds ``fit``, ``nominal``, ``dictionary``, ``starts``, ``distinct_starts``,
    ``restart_above``, ``max_iter``, ``ftol``, ``xtol`` and ``batch_size`` (other keys are ignored;
    the three multi-start keys default to a single start); ``bounds`` maps every fitted parameter to
    (lower, upper) in SI units (from :func:`crbnn.config.settings.nlls_bounds`).  ``dictionary``: the
    prebuilt dictionary of these settings (:func:`settings_dictionary`; built here when None).  The
    one place that turns the config into a fit, shared by the grid, test-set and image fits.
    """
    fit = tuple(settings["fit"])
    if start is None and dictionary is None:
        dictionary = settings_dictionary(sequence, basis_u, settings, r2sl=r2sl, device=device)
    return fit_nlls(
        coefficients, sequence, basis_u, bounds={p: bounds[p] for p in fit}, nominal=settings["nominal"], fit=fit,
        start=start, dictionary=None if start is not None else dictionary, starts=int(settings.get("starts", 1)),
        distinct=tuple(settings.get("distinct_starts", ())), restart_above=settings.get("restart_above"),
        max_iter=int(settings["max_iter"]), ftol=float(settings["ftol"]), xtol=float(settings["xtol"]),
        batch_size=int(settings["batch_size"]), r2sl=r2sl, device=device, workers=workers, log=log,
    )


def settings_dictionary(
    sequence: Any,
    basis_u: NDArray[np.complex128],
    settings: Mapping[str, Any],
    *,
    r2sl: Any = None,
    device: str | torch.device = "cpu",
) -> Dictionary | None:
    """The start dictionary of the config section ``nlls`` (None when ``dictionary`` is empty): one
    model evaluation of every atom, to be reused by every fit with these settings."""
    axes = dictionary_axes(settings.get("dictionary", {}), float(sequence.tr))
    if not axes:
        return None
    fit = tuple(settings["fit"])
    model = PaperModel(sequence, basis_u, fit=fit, fixed=settings["nominal"], r2sl=r2sl,
                       max_batch=int(settings["batch_size"]), device=device)
    return Dictionary.build(model, axes, settings["nominal"], fit)


def nlls_estimator(
    sequence: Any,
    basis_u: NDArray[np.complex128],
    settings: Mapping[str, Any],
    bounds: Mapping[str, Sequence[float]],
    estimated: Sequence[str],
    *,
    r2sl: Any = None,
    device: str | torch.device = "cpu",
    workers: int = 1,
    log: Callable[[str], None] | None = None,
) -> Callable[[NDArray[np.complex128]], NDArray[np.float64]]:
    """NLLS (:func:`fit_nlls_with_settings`) as an estimator: noisy coefficients [m, R] -> estimates
    [m, E] of ``estimated`` (SI units), for the test-set and SNR-sweep evaluations (the start
    dictionary is built once, at the first call)."""

    built: list[Dictionary | None] = []  # the dictionary, built at the first call and reused

    def estimate(y: NDArray[np.complex128]) -> NDArray[np.float64]:
        if not built:
            built.append(settings_dictionary(sequence, basis_u, settings, r2sl=r2sl, device=device))
        res = fit_nlls_with_settings(y, sequence, basis_u, settings, bounds, r2sl=r2sl, device=device,
                                     workers=workers, dictionary=built[0], log=log)
        return res.get(estimated)

    return estimate
