"""Batched variable-projection Levenberg-Marquardt: the generic solver behind the NLLS reference.

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
onto the box.

:func:`fit_varpro` takes any model callable (:data:`Model`); the paper's model is
:class:`crbnn.estimate.paper_model.PaperModel`, the starts come from :mod:`crbnn.estimate.dictionary`
and :func:`crbnn.estimate.nlls.fit_nlls` is the one-call API.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

#: A model maps parameters theta [B, P] (float64, SI units) to (g [B, R] complex128,
#: dg/dtheta [B, R, P] complex128 or None when ``jacobian=False``).
Model = Callable[..., tuple[torch.Tensor, torch.Tensor | None]]


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


def projected_cost(y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Variable-projection cost ||y - M0* g||^2 [B] of coefficients y [B, R] at model signals g [B, R]."""
    return _projected(y, g, None)[0]


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
