"""Non-linear least-squares (NLLS) reference estimator: batched variable-projection Levenberg-Marquardt.

The measured subspace coefficients y [R] (complex) are modelled as y = M0 * g(theta) with a complex
scale M0 and the noise-free coefficients g(theta) = u^H s(theta) of the paper's model at M0 = 1.
For fixed theta the best M0 is linear (variable projection, Golub & Pereyra 1973):

    M0*(theta) = g^H y / g^H g,      r(theta) = y - M0*(theta) g(theta),

and NLLS minimizes ||r(theta)||^2 over the real tissue parameters theta within box bounds.  The
Jacobian of the projected residual is exact (from the model's exact Jacobian dg/dtheta,
J_c = u^H J_s):

    dr/dtheta_p = -M0* G_p - g dM0*/dtheta_p,
    dM0*/dtheta_p = (G_p^H y - 2 M0* Re(g^H G_p)) / g^H g.

Why a batched Levenberg-Marquardt in torch rather than scipy.optimize.least_squares per voxel:
the model evaluation (a 1142-pulse propagation with Jacobian) dominates the cost and is much
cheaper per signal in a batch; here every LM iteration costs exactly one batched model evaluation
with Jacobian for the voxels still iterating (the Jacobian of an accepted trial point is reused
for the next step).  The parameters are rescaled to [0, 1] by the bounds, the damping is
Marquardt's (lambda * diag(J^T J), MINPACK-style running maximum), trial points are projected
onto the box.  Start: a coarse dictionary match (maximum of |<g, y>| / ||g|| over a small grid of
the estimated parameters, nuisance parameters at nominal values) or any given estimate (for
example a network's).

The generic solver :func:`fit_varpro` takes any model callable; :class:`PaperModel` wraps
``crbnn.physics.signal.simulate_paper`` and the basis; :func:`fit_nlls` is the one-call API used by the
workflow and the in vivo maps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

#: A model maps parameters theta [B, P] (float64, SI units) to (g [B, R] complex128,
#: dg/dtheta [B, R, P] complex128 or None when ``jacobian=False``).
Model = Callable[..., tuple[torch.Tensor, torch.Tensor | None]]

#: Default fitted parameters: all tissue parameters of the paper's model (complex M0 is projected out).
FIT_PARAMETERS: tuple[str, ...] = ("m0s", "T1", "T2f", "Rex", "T2s", "omega0", "B1")


@dataclass
class FitResult:
    """Result of a batched NLLS fit of n voxels.

    ``theta`` [n, P] float64 fitted parameters (columns ``names``, SI units), ``M0`` [n] complex128,
    ``cost`` [n] final ||r||^2, ``cost0`` [n] the start's cost, ``iterations`` [n],
    ``converged`` [n] bool, ``time_s`` total wall time (s).
    """

    theta: NDArray[np.float64]
    M0: NDArray[np.complex128]
    cost: NDArray[np.float64]
    cost0: NDArray[np.float64]
    iterations: NDArray[np.int64]
    converged: NDArray[np.bool_]
    names: tuple[str, ...]
    time_s: float

    @property
    def time_per_voxel(self) -> float:
        """Wall time per voxel (s)."""
        return self.time_s / max(len(self.cost), 1)

    def get(self, names: Sequence[str]) -> NDArray[np.float64]:
        """Columns of ``theta`` for the given parameter names, [n, len(names)]."""
        return self.theta[:, [self.names.index(p) for p in names]]


def _projected(
    y: torch.Tensor, g: torch.Tensor, dg: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Variable projection: (cost [B], M0 [B], real Jacobian [B, 2R, P] of the real residual)."""
    gg = (g.conj() * g).real.sum(-1).clamp_min(torch.finfo(torch.float64).tiny)
    a = (g.conj() * y).sum(-1) / gg
    r = y - a[:, None] * g
    cost = (r.conj() * r).real.sum(-1)
    if dg is None:
        return cost, a, None
    gy = (dg.conj() * y[:, :, None]).sum(1)  # G_p^H y  [B, P]
    gG = (g.conj()[:, :, None] * dg).sum(1).real  # Re(g^H G_p)  [B, P]
    da = (gy - 2 * a[:, None] * gG) / gg[:, None]
    dr = -a[:, None, None] * dg - g[:, :, None] * da[:, None, :]
    jac = torch.cat([dr.real, dr.imag], dim=1)
    return cost, a, jac


def _residual_real(y: torch.Tensor, g: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    r = y - a[:, None] * g
    return torch.cat([r.real, r.imag], dim=1)


def fit_varpro(
    model: Model,
    y: ArrayLike,
    theta0: ArrayLike,
    lower: ArrayLike,
    upper: ArrayLike,
    *,
    names: Sequence[str] | None = None,
    max_iter: int = 100,
    ftol: float = 1e-8,
    xtol: float = 1e-10,
    gtol: float = 1e-8,
    lambda0: float = 1e-3,
    batch_size: int = 4096,
    device: str | torch.device = "cpu",
    workers: int = 1,
    log: Callable[[str], None] | None = None,
) -> FitResult:
    """Fit y ~ M0 * g(theta) for n voxels at once (batched variable-projection Levenberg-Marquardt).

    ``y`` [n, R] complex, ``theta0`` [n, P] start within ``lower`` <= theta <= ``upper`` ([P] each,
    finite).  A voxel stops when an accepted step reduces the cost by less than ``ftol`` relative
    (or to below 1e-30 of ||y||^2), or moves the scaled parameters by less than ``xtol``, or after
    ``max_iter`` iterations (then ``converged`` is False), or when the largest cosine between the
    residual and a (scaled) Jacobian column drops below ``gtol`` (MINPACK's criterion).  Voxels are processed in chunks of
    ``batch_size``; each iteration is one model evaluation with Jacobian of the active voxels.
    ``workers`` > 1 fits contiguous parts of the voxels in that many spawned processes (one torch
    thread each; the model must be picklable): on CPUs the physics scales far better over
    processes than over intra-op threads.

    >>> def line(theta, jacobian=True):  # g = exp(-t / theta) on 5 points, 1 parameter
    ...     t = torch.arange(5.0, dtype=torch.float64)
    ...     g = torch.exp(-t / theta).to(torch.complex128)
    ...     return g, (g * t / theta**2)[..., None].to(torch.complex128) if jacobian else None
    >>> yy = (2 - 1j) * line(torch.tensor([[3.0]]))[0]
    >>> res = fit_varpro(line, yy.numpy(), [[1.0]], [0.1], [10.0])
    >>> round(float(res.theta[0, 0]), 8), np.round(res.M0, 8).tolist(), bool(res.converged[0])
    (3.0, [(2-1j)], True)
    """
    t_start = time.perf_counter()
    if workers > 1 and len(np.asarray(y)) >= workers:
        return _fit_parallel(model, y, theta0, lower, upper, names=names, max_iter=max_iter, ftol=ftol,
                             xtol=xtol, gtol=gtol, lambda0=lambda0, batch_size=batch_size, device=device,
                             workers=workers, log=log)
    dev = torch.device(device)
    yy = torch.as_tensor(np.asarray(y), dtype=torch.complex128).to(dev)
    th0 = torch.as_tensor(np.asarray(theta0, dtype=np.float64)).to(dev)
    lo = torch.as_tensor(np.asarray(lower, dtype=np.float64)).to(dev)
    hi = torch.as_tensor(np.asarray(upper, dtype=np.float64)).to(dev)
    if yy.ndim != 2 or th0.ndim != 2 or th0.shape[0] != yy.shape[0]:
        raise ValueError(f"need y [n, R] and theta0 [n, P]; got {tuple(yy.shape)}, {tuple(th0.shape)}")
    P = th0.shape[1]
    if lo.shape != (P,) or hi.shape != (P,) or not bool(torch.all(hi > lo)) or not bool(torch.isfinite(lo).all() & torch.isfinite(hi).all()):
        raise ValueError("lower/upper must be finite [P] arrays with upper > lower")
    names_t = tuple(names) if names is not None else tuple(f"p{i}" for i in range(P))
    n = yy.shape[0]
    out_theta = np.empty((n, P))
    out_m0 = np.empty(n, dtype=np.complex128)
    out_cost = np.empty(n)
    out_cost0 = np.empty(n)
    out_it = np.zeros(n, dtype=np.int64)
    out_conv = np.zeros(n, dtype=bool)
    scale = hi - lo
    for s in range(0, n, batch_size):
        sl = slice(s, min(s + batch_size, n))
        res = _lm_chunk(model, yy[sl], ((th0[sl] - lo) / scale).clamp(0.0, 1.0), lo, scale,
                        max_iter=max_iter, ftol=ftol, xtol=xtol, gtol=gtol, lambda0=lambda0, log=log)
        x, m0, cost, cost0, it, conv = res
        out_theta[sl] = (lo + x * scale).cpu().numpy()
        out_m0[sl], out_cost[sl], out_cost0[sl] = m0.cpu().numpy(), cost.cpu().numpy(), cost0.cpu().numpy()
        out_it[sl], out_conv[sl] = it.cpu().numpy(), conv.cpu().numpy()
        if log is not None:
            log(f"NLLS voxels {sl.start}-{sl.stop - 1}: {int(conv.sum())}/{len(conv)} converged, "
                f"median iterations {float(it.median()):.0f}, {time.perf_counter() - t_start:.1f} s")
    return FitResult(out_theta, out_m0, out_cost, out_cost0, out_it, out_conv, names_t,
                     time.perf_counter() - t_start)


def _fit_worker(args: tuple[Any, ...]) -> FitResult:
    model, y, theta0, lower, upper, kwargs = args
    torch.set_num_threads(1)
    return fit_varpro(model, y, theta0, lower, upper, **kwargs)


def _fit_parallel(
    model: Model, y: ArrayLike, theta0: ArrayLike, lower: ArrayLike, upper: ArrayLike, *, workers: int,
    log: Callable[[str], None] | None, **kwargs: Any,
) -> FitResult:
    """:func:`fit_varpro` over ``workers`` spawned processes (contiguous parts), results concatenated."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    t0 = time.perf_counter()
    yy, th = np.asarray(y), np.asarray(theta0, dtype=np.float64)
    parts = np.array_split(np.arange(len(yy)), workers)
    jobs = [(model, yy[i], th[i], lower, upper, dict(kwargs, workers=1)) for i in parts]
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as ex:
        results = list(ex.map(_fit_worker, jobs))
    res = FitResult(
        np.concatenate([r.theta for r in results]), np.concatenate([r.M0 for r in results]),
        np.concatenate([r.cost for r in results]), np.concatenate([r.cost0 for r in results]),
        np.concatenate([r.iterations for r in results]), np.concatenate([r.converged for r in results]),
        results[0].names, time.perf_counter() - t0)
    if log is not None:
        log(f"NLLS: {len(yy)} voxels over {workers} processes: {int(res.converged.sum())} converged, "
            f"median iterations {float(np.median(res.iterations)):.0f}, {res.time_s:.1f} s")
    return res


def _lm_chunk(
    model: Model,
    y: torch.Tensor,
    x0: torch.Tensor,
    lo: torch.Tensor,
    scale: torch.Tensor,
    *,
    max_iter: int,
    ftol: float,
    xtol: float,
    gtol: float,
    lambda0: float,
    log: Callable[[str], None] | None = None,
) -> tuple[torch.Tensor, ...]:
    """Levenberg-Marquardt on one chunk in scaled coordinates x in [0, 1]^P."""
    B, P = x0.shape

    def evaluate(x: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        g, dg = model(lo + x * scale, jacobian=True)
        dg = dg * scale.to(dg.dtype)  # d/dx = d/dtheta * scale
        cost, a, jac = _projected(yb, g, dg)
        return cost, a, jac, _residual_real(yb, g, a)

    x = x0.clone()
    cost, m0, jac, res = evaluate(x, y)
    cost0 = cost.clone()
    ynorm = (y.conj() * y).real.sum(-1)
    dev = x0.device
    lam = torch.full((B,), lambda0, dtype=torch.float64, device=dev)
    nu = torch.full((B,), 2.0, dtype=torch.float64, device=dev)
    dmax = torch.zeros(B, P, dtype=torch.float64, device=dev)
    it = torch.zeros(B, dtype=torch.int64, device=dev)
    conv = cost <= 1e-30 * ynorm
    active = ~conv
    eye = torch.eye(P, dtype=torch.float64, device=dev)
    t0 = time.perf_counter()
    for iteration in range(max_iter):
        idx = torch.nonzero(active).squeeze(1)
        if idx.numel() == 0:
            break
        if log is not None and iteration % 10 == 0:
            log(f"  LM iteration {iteration}: {idx.numel()}/{B} voxels active, {time.perf_counter() - t0:.1f} s")
        J, r = jac[idx], res[idx]
        A = J.transpose(1, 2) @ J
        grad = (J.transpose(1, 2) @ r[:, :, None]).squeeze(2)
        dmax[idx] = torch.maximum(dmax[idx], torch.diagonal(A, dim1=1, dim2=2))
        D = dmax[idx].clamp_min(1e-12 * dmax[idx].amax(1, keepdim=True).clamp_min(1e-300))
        M = A + lam[idx, None, None] * torch.diag_embed(D)
        # active set: a parameter at a bound whose descent direction points outward stays there;
        # the step is a damped Gauss-Newton step in the remaining (free) parameters
        xi = x[idx]
        fixed = ((xi <= 0.0) & (grad > 0)) | ((xi >= 1.0) & (grad < 0))
        if bool(fixed.any()):
            keep = (~fixed).to(torch.float64)
            M = M * keep[:, :, None] * keep[:, None, :] + torch.diag_embed(fixed.to(torch.float64))
            grad = grad * keep
        try:
            step = -torch.linalg.solve(M, grad[:, :, None]).squeeze(2)
        except RuntimeError:  # singular despite damping: fall back to least squares
            step = -torch.linalg.lstsq(M + 1e-12 * eye, grad[:, :, None]).solution.squeeze(2)
        step = torch.nan_to_num(step)
        x_new = (x[idx] + step).clamp(0.0, 1.0)
        step = x_new - x[idx]
        c_new, a_new, j_new, r_new = evaluate(x_new, y[idx])
        # predicted reduction of the linear model: ||r||^2 - ||r + J step||^2
        pred = cost[idx] - ((r + (J @ step[:, :, None]).squeeze(2)) ** 2).sum(-1)
        actual = cost[idx] - c_new
        ok = torch.isfinite(c_new) & (c_new < cost[idx])
        rho = actual / pred.clamp_min(1e-300)
        it[idx] += 1
        # accepted
        acc = idx[ok]
        if acc.numel():
            rel = actual[ok] / cost[acc].clamp_min(1e-300)
            small_step = step[ok].norm(dim=1) <= xtol * (x_new[ok].norm(dim=1) + xtol)
            # MINPACK gtol: largest cosine between the residual and a Jacobian column
            jn = j_new[ok].norm(dim=1).clamp_min(1e-300)
            gnew = (j_new[ok].transpose(1, 2) @ r_new[ok][:, :, None]).squeeze(2)
            xa = x_new[ok]
            gnew = torch.where(((xa <= 0.0) & (gnew > 0)) | ((xa >= 1.0) & (gnew < 0)), 0.0, gnew)
            cosine = (gnew.abs() / jn).amax(1)
            small_grad = cosine <= gtol * c_new[ok].clamp_min(0).sqrt()
            x[acc], cost[acc], m0[acc], jac[acc], res[acc] = x_new[ok], c_new[ok], a_new[ok], j_new[ok], r_new[ok]
            lam[acc] = lam[acc] * torch.clamp(1 - (2 * rho[ok] - 1) ** 3, min=1 / 3)
            nu[acc] = 2.0
            done = (rel <= ftol) | small_step | small_grad | (c_new[ok] <= 1e-30 * ynorm[acc])
            conv[acc] = done
        rej = idx[~ok]
        if rej.numel():
            lam[rej] = lam[rej] * nu[rej]
            nu[rej] = nu[rej] * 2
            # a rejected step that is already negligible: at a (bound-constrained) minimum
            tiny = step[~ok].norm(dim=1) <= xtol * (x[rej].norm(dim=1) + xtol)
            conv[rej] = tiny | (lam[rej] > 1e16)
        active = ~conv
    return x, m0, cost, cost0, it, conv


# --------------------------------------------------------------------------------- paper model


class PaperModel:
    """g(theta) = u^H s(theta) of the paper's model at M0 = 1, with the exact Jacobian J_c = u^H J_s.

    ``fit`` names the fitted tissue parameters (columns of theta, from ``FIT_PARAMETERS``);
    ``fixed`` gives values (SI units) for the tissue parameters not fitted.  ``max_batch`` bounds the
    number of signals per physics call (memory).

    ``sequence`` is a ``crbnn.data.sequence.Sequence`` (alpha [N] rad, trf [N] s, tr s), ``basis_u`` [N, R].
    """

    def __init__(
        self,
        sequence: Any,
        basis_u: ArrayLike,
        fit: Sequence[str] = FIT_PARAMETERS,
        fixed: Mapping[str, float] | None = None,
        r2sl: Any = None,
        max_batch: int = 1024,
        device: str | torch.device = "cpu",
    ) -> None:
        fixed = dict(fixed or {})
        unknown = [p for p in fit if p not in FIT_PARAMETERS]
        missing = [p for p in FIT_PARAMETERS if p not in fit and p not in fixed]
        if unknown or missing:
            raise ValueError(f"PaperModel: unknown fitted parameters {unknown}, no value for {missing}")
        self.fit = tuple(fit)
        self.fixed = {p: float(fixed[p]) for p in FIT_PARAMETERS if p not in fit}
        self.device = torch.device(device)
        self.alpha = torch.as_tensor(np.asarray(sequence.alpha, dtype=np.float64)).to(self.device)
        self.trf = torch.as_tensor(np.asarray(sequence.trf, dtype=np.float64)).to(self.device)
        self.tr = float(sequence.tr)
        self.u = torch.as_tensor(np.asarray(basis_u, dtype=np.complex128)).to(self.device)
        self.r2sl = r2sl
        self.max_batch = int(max_batch)
        self.n_signals = 0  # simulated signals (for timing reports)

    def params(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Physics parameter dict (M0 = 1) from theta [B, P]."""
        B = theta.shape[0]
        p: dict[str, torch.Tensor] = {"M0": torch.ones(B, dtype=torch.complex128, device=theta.device)}
        for j, name in enumerate(self.fit):
            p[name] = theta[:, j]
        for name, v in self.fixed.items():
            p[name] = torch.full((B,), v, dtype=torch.float64, device=theta.device)
        return p

    def __call__(self, theta: torch.Tensor, jacobian: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        from crbnn.data.basis import compress_jacobian
        from crbnn.physics.signal import simulate_paper

        theta = torch.as_tensor(theta, dtype=torch.float64).to(self.device)
        gs, dgs = [], []
        for s in range(0, theta.shape[0], self.max_batch):
            th = theta[s:s + self.max_batch]
            sig, jac = simulate_paper(self.alpha, self.trf, self.tr, self.params(th),
                                      wrt=self.fit if jacobian else (), r2sl=self.r2sl)
            uh = self.u.conj()
            gs.append(sig.to(torch.complex128) @ uh)
            if jacobian:
                dgs.append(compress_jacobian(jac.to(torch.complex128), self.u))
            self.n_signals += th.shape[0]
        g = torch.cat(gs)
        return g, (torch.cat(dgs) if jacobian else None)


def dictionary_start(
    model: Model,
    y: ArrayLike,
    axes: Mapping[str, ArrayLike],
    nominal: Mapping[str, float],
    names: Sequence[str],
) -> NDArray[np.float64]:
    """Coarse dictionary match: start values [n, P] maximizing |<g, y>| / ||g||.

    ``axes`` maps some fitted parameter names to candidate values (their outer product is the
    dictionary); every other fitted parameter starts at ``nominal[name]``.  One model evaluation
    without Jacobian of prod(len(axes)) atoms.
    """
    yy = np.asarray(y, dtype=np.complex128)
    ax_names = list(axes)
    grids = np.meshgrid(*[np.asarray(axes[a], dtype=np.float64) for a in ax_names], indexing="ij")
    m = grids[0].size if grids else 1
    atoms = np.empty((m, len(names)))
    for j, p in enumerate(names):
        atoms[:, j] = grids[ax_names.index(p)].reshape(-1) if p in ax_names else float(nominal[p])
    g, _ = model(torch.as_tensor(atoms), jacobian=False)
    g = g.cpu().numpy()
    g = g / np.linalg.norm(g, axis=1, keepdims=True).clip(1e-300)
    best = np.empty(len(yy), dtype=np.int64)
    for s in range(0, len(yy), 65536):
        best[s:s + 65536] = np.abs(yy[s:s + 65536] @ g.conj().T).argmax(axis=1)
    return atoms[best]


def fit_nlls(
    coefficients: ArrayLike,
    sequence: Any,
    basis_u: ArrayLike,
    *,
    bounds: Mapping[str, Sequence[float]],
    nominal: Mapping[str, float],
    fit: Sequence[str] = FIT_PARAMETERS,
    start: ArrayLike | Mapping[str, ArrayLike] | None = None,
    dictionary: Mapping[str, Sequence[float]] | None = None,
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
    dictionary : ``{name: values}`` axes of the coarse dictionary used when ``start`` is None.
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
        if dictionary:
            theta0 = dictionary_start(model, yv, dictionary, nominal, fit)
        else:
            theta0 = np.tile([float(nominal[p]) for p in fit], (len(yv), 1))
    elif isinstance(start, Mapping):
        theta0 = np.tile([float(nominal[p]) for p in fit], (len(yv), 1))
        for p, v in start.items():
            theta0[:, fit.index(p)] = np.asarray(v, dtype=np.float64).reshape(-1)[valid]
    else:
        theta0 = np.asarray(start, dtype=np.float64)[valid]
    theta0 = np.clip(np.nan_to_num(theta0, nan=0.0), lower, upper)
    res = fit_varpro(model, yv, theta0, lower, upper, names=fit, max_iter=max_iter, ftol=ftol,
                     xtol=xtol, gtol=gtol, batch_size=batch_size, device=device, workers=workers, log=log)

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
    """Processes for NLLS fits: the job's threads on the CPU (the fits scale with processes, not
    with torch threads), one on a GPU."""
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
    log: Callable[[str], None] | None = None,
) -> FitResult:
    """:func:`fit_nlls` with the solver settings of the config section ``nlls``.

    ``settings`` holds ``fit``, ``nominal``, ``dictionary``, ``max_iter``, ``ftol``, ``xtol`` and
    ``batch_size`` (other keys are ignored); ``bounds`` maps every fitted parameter to (lower, upper)
    in SI units (from :func:`crbnn.config.settings.nlls_bounds`).  The one place that turns the config into
    a fit, shared by the grid, test-set and image fits.
    """
    fit = tuple(settings["fit"])
    return fit_nlls(
        coefficients, sequence, basis_u, bounds={p: bounds[p] for p in fit}, nominal=settings["nominal"], fit=fit,
        start=start, dictionary=None if start is not None else dictionary_axes(settings.get("dictionary", {})),
        max_iter=int(settings["max_iter"]), ftol=float(settings["ftol"]), xtol=float(settings["xtol"]),
        batch_size=int(settings["batch_size"]), r2sl=r2sl, device=device, workers=workers, log=log,
    )


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
    [m, E] of ``estimated`` (SI units), for the test-set and SNR-sweep evaluations."""

    def estimate(y: NDArray[np.complex128]) -> NDArray[np.float64]:
        res = fit_nlls_with_settings(y, sequence, basis_u, settings, bounds, r2sl=r2sl, device=device,
                                     workers=workers, log=log)
        return res.get(estimated)

    return estimate


def geometric(start: float, stop: float, num: int) -> list[float]:
    """Geometrically spaced values (for dictionary axes of T1, T2f).

    >>> [round(v, 3) for v in geometric(0.5, 2.0, 3)]
    [0.5, 1.0, 2.0]
    """
    return np.geomspace(start, stop, num).tolist() if num > 1 else [math.sqrt(start * stop)]


def dictionary_axes(spec: Mapping[str, Mapping[str, Any]]) -> dict[str, list[float]]:
    """Dictionary axes from config (``{name: {start, stop, num, spacing}}``) as value lists.

    >>> dictionary_axes({"T1": {"start": 0.5, "stop": 2.0, "num": 3, "spacing": "log"}})
    {'T1': [0.5, 1.0, 2.0]}
    """
    out = {}
    for name, s in spec.items():
        if s.get("spacing", "linear") == "log":
            out[name] = geometric(float(s["start"]), float(s["stop"]), int(s["num"]))
        else:
            out[name] = np.linspace(float(s["start"]), float(s["stop"]), int(s["num"])).tolist()
    return out
