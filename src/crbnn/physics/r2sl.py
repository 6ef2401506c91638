"""Linearized saturation rate R2sl of the semi-solid pool (docs/physics.md section 3).

For a rectangular on-resonance pulse of duration TRF and flip angle alpha, an isolated,
non-relaxing semi-solid pool with super-Lorentzian lineshape obeys, in normalized time
(unit T2s), the Volterra integro-differential equation

    dz/dt = -Omega^2 integral_0^t G(t - s) z(s) ds,   z(0) = 1,   Omega = B1 |alpha| T2s / TRF.

``rho(tau, Omega)`` is the transverse rate of a Bloch pool that ends the pulse (t = tau =
TRF/T2s) at the same z; R2sl = rho / T2s.  ``rho`` is tabulated on a regular (tau, Omega) grid
and interpolated bilinearly; derivatives with respect to T2s and B1 are those of the interpolant.

The Volterra equation is integrated for all Omega of the grid at once with the trapezoidal
product rule (second order, error expansion in even powers of the step), three step sizes and
Richardson extrapolation (sixth order), and a cubic spline in time gives z at the tau grid.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field

import h5py
import numpy as np
import torch
from numpy.typing import NDArray
from scipy.interpolate import CubicSpline

from crbnn.common.io import atomic_write, cache_dir, sha256_arrays
from crbnn.physics.greens import greens_superlorentzian

log = logging.getLogger(__name__)

#: Defaults of docs/physics.md: TRF 100-500 us, T2s 5-21 us, omega1_max = pi / 500 us, B1_max = 1.4.
DEFAULT_GRID = {
    "trf_min": 100e-6,
    "trf_max": 500e-6,
    "t2s_min": 5e-6,
    "t2s_max": 21e-6,
    "omega1_max": np.pi / 500e-6,
    "b1_max": 1.4,
    "n_tau": 1024,
    "n_omega": 256,
}


def solve_volterra(
    omegas: NDArray[np.float64], t_max: float, h: float = 0.1, levels: int = 3
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """z(t) of the isolated semi-solid pool for every Omega in ``omegas`` (normalized units).

    Returns ``(t, z)`` with ``t`` the coarse grid of step ``h`` on [0, t_max] and ``z`` of shape
    [len(t), len(omegas)], Richardson-extrapolated over ``levels`` step sizes h, h/2, h/4, ...

    >>> t, z = solve_volterra(np.array([0.0, 0.1]), 1.0, h=0.1)
    >>> float(z[-1, 0]), round(float(z[-1, 1]), 6)  # no drive: z = 1; weak drive: z ~ 1 - Omega^2 t^2 / 2
    (1.0, 0.995...)
    """
    omegas = np.asarray(omegas, dtype=np.float64)
    n0 = int(round(t_max / h))
    results = []
    for level in range(levels):
        m = 2**level
        hl = h / m
        n = n0 * m
        g = greens_superlorentzian(np.arange(n + 1) * hl)
        w2 = omegas**2
        z = np.empty((n + 1, omegas.size))
        z[0] = 1.0
        y_prev = np.zeros(omegas.size)
        denom = 1.0 + hl * hl * w2 * g[0] / 4.0
        for k in range(1, n + 1):
            # S_k = h [ g_k z_0 / 2 + sum_{j=1}^{k-1} g_{k-j} z_j ]
            s = 0.5 * g[k] * z[0]
            if k > 1:
                s = s + g[k - 1 : 0 : -1] @ z[1:k]
            s = hl * s
            zk = (z[k - 1] - 0.5 * hl * w2 * (y_prev + s)) / denom
            z[k] = zk
            y_prev = s + 0.5 * hl * g[0] * zk
        results.append(z[::m])
    # Richardson extrapolation in h^2, h^4, ...
    table = results
    for order in range(1, levels):
        factor = 4.0**order
        table = [(factor * table[i + 1] - table[i]) / (factor - 1.0) for i in range(len(table) - 1)]
    t = np.arange(n0 + 1) * h
    return t, table[0]


def bloch_z(tau: NDArray, rho: NDArray, omega: NDArray) -> NDArray[np.float64]:
    """z at the end of a pulse of a Bloch pool with transverse rate ``rho`` (normalized units).

    zB = Re{exp(-rho tau/2) [cosh(tau q/2) + (rho/q) sinh(tau q/2)]}, q = sqrt(rho^2 - 4 Omega^2).

    >>> round(float(bloch_z(np.array(2.0), np.array(1.0), np.array(0.0))), 12)
    1.0
    """
    tau = np.asarray(tau, dtype=np.float64)
    rho = np.asarray(rho, dtype=np.float64)
    omega = np.asarray(omega, dtype=np.float64)
    q = np.sqrt((rho * rho - 4.0 * omega * omega).astype(np.complex128))
    a = tau / 2.0
    x = a * q
    ep = np.exp(a * (q - rho))  # exp(-a rho) exp(a q)
    em = np.exp(-a * (q + rho))  # exp(-a rho) exp(-a q)
    cosh_part = 0.5 * (ep + em)
    small = np.abs(x) < 1e-3
    with np.errstate(divide="ignore", invalid="ignore"):
        sinhc = np.where(small, 1.0 + x * x / 6.0 + x**4 / 120.0, np.sinh(np.where(small, 1.0, x)) / np.where(small, 1.0, x))
        sinh_term = np.where(small, np.exp(-a * rho) * rho * a * sinhc, rho / (2.0 * q) * (ep - em))
    return np.real(cosh_part + sinh_term)


def _solve_rho(tau: NDArray, omega: NDArray, z: NDArray, rho_lo: float = 1e-3, rho_hi: float = 5.0) -> NDArray:
    """rho with bloch_z(tau, rho, omega) = z, vectorized over 1-D arrays of equal length.

    A scan over rho brackets the largest root (the branch reached from the over-damped side);
    bisection refines it to machine precision.  Where no root exists (strongly driven corners of
    the grid, B1*alpha > ~4.5 rad, beyond any pulse of docs/physics.md), the rho that minimizes
    |zB - z| on the scan is refined by golden-section search: the linearized rate that
    "minimizes the error of zs at the end of the pulse".
    """
    scan = np.geomspace(rho_lo, rho_hi, 160)
    out = np.empty(tau.shape)
    for start in range(0, tau.size, 4096):
        sl = slice(start, start + 4096)
        ta, om, zz = tau[sl], omega[sl], z[sl]
        f = bloch_z(ta[:, None], scan[None, :], om[:, None]) - zz[:, None]
        change = np.signbit(f[:, :-1]) != np.signbit(f[:, 1:])
        has = change.any(-1)
        last = change.shape[1] - 1 - change[:, ::-1].argmax(-1)
        best = np.abs(f).argmin(-1)
        lo = np.where(has, scan[last], scan[np.maximum(best - 1, 0)])
        hi = np.where(has, scan[np.minimum(last + 1, scan.size - 1)], scan[np.minimum(best + 1, scan.size - 1)])
        # bisection where a root is bracketed
        flo = bloch_z(ta, lo, om) - zz
        a, b = lo.copy(), hi.copy()
        for _ in range(60):
            mid = 0.5 * (a + b)
            fm = bloch_z(ta, mid, om) - zz
            same = np.signbit(fm) == np.signbit(flo)
            a = np.where(same, mid, a)
            flo = np.where(same, fm, flo)
            b = np.where(same, b, mid)
        root = 0.5 * (a + b)
        if not has.all():
            # golden-section minimization of |zB - z| where no root exists
            g = (np.sqrt(5.0) - 1.0) / 2.0
            a, b = lo.copy(), hi.copy()
            for _ in range(80):
                c = b - g * (b - a)
                d = a + g * (b - a)
                fc = np.abs(bloch_z(ta, c, om) - zz)
                fd = np.abs(bloch_z(ta, d, om) - zz)
                left = fc < fd
                b = np.where(left, d, b)
                a = np.where(left, a, c)
            root = np.where(has, root, 0.5 * (a + b))
        out[sl] = root
    return out


def _grid_hash(meta: dict) -> str:
    return sha256_arrays(json.dumps(meta, sort_keys=True).encode())[:16]


@dataclass
class R2slTable:
    """Tabulated rho(tau, Omega) with bilinear lookup of R2sl and its derivatives.

    ``tau`` [n_tau] and ``omega`` [n_omega] are regular grids, ``rho`` [n_tau, n_omega].
    """

    tau: NDArray[np.float64]
    omega: NDArray[np.float64]
    rho: NDArray[np.float64]
    grid: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(
        cls,
        trf_min: float = DEFAULT_GRID["trf_min"],
        trf_max: float = DEFAULT_GRID["trf_max"],
        t2s_min: float = DEFAULT_GRID["t2s_min"],
        t2s_max: float = DEFAULT_GRID["t2s_max"],
        omega1_max: float = DEFAULT_GRID["omega1_max"],
        b1_max: float = DEFAULT_GRID["b1_max"],
        n_tau: int = DEFAULT_GRID["n_tau"],
        n_omega: int = DEFAULT_GRID["n_omega"],
        h: float = 0.1,
    ) -> "R2slTable":
        """Solve the Volterra equation and the root problem on the grid (seconds to a minute).

        tau covers [trf_min/t2s_max, trf_max/t2s_min] and Omega [0, b1_max omega1_max t2s_max].
        """
        for name, lo, hi in (("trf", trf_min, trf_max), ("t2s", t2s_min, t2s_max)):
            if not 0 < lo < hi:
                raise ValueError(f"R2sl grid: need 0 < {name}_min < {name}_max, got {lo}, {hi}")
        if omega1_max <= 0 or b1_max <= 0:
            raise ValueError(f"R2sl grid: omega1_max and b1_max must be > 0, got {omega1_max}, {b1_max}")
        t0 = time.perf_counter()
        tau = np.linspace(trf_min / t2s_max, trf_max / t2s_min, n_tau)
        omega = np.linspace(0.0, b1_max * omega1_max * t2s_max, n_omega)
        t, z = solve_volterra(omega[1:], float(tau[-1]) + 4 * h, h=h)
        z_tau = CubicSpline(t, z, axis=0)(tau)  # [n_tau, n_omega - 1]
        rho = np.empty((n_tau, n_omega))
        shape = z_tau.shape
        tt = np.broadcast_to(tau[:, None], shape).ravel()
        oo = np.broadcast_to(omega[None, 1:], shape).ravel()
        rho[:, 1:] = _solve_rho(tt, oo, z_tau.ravel()).reshape(shape)
        rho[:, 0] = rho[:, 1]  # Omega = 0: copy of the next column (docs/physics.md)
        grid = dict(
            trf_min=trf_min, trf_max=trf_max, t2s_min=t2s_min, t2s_max=t2s_max,
            omega1_max=omega1_max, b1_max=b1_max, n_tau=n_tau, n_omega=n_omega, h=h,
        )
        log.info("built R2sl table %s in %.1f s", grid, time.perf_counter() - t0)
        return cls(tau=tau, omega=omega, rho=rho, grid=grid)

    def save(self, path: str | os.PathLike) -> None:
        """Write the table to HDF5 atomically (datasets tau, omega, rho; attribute grid as JSON)."""
        with atomic_write(path) as tmp, h5py.File(tmp, "w") as f:
            f["tau"] = self.tau
            f["omega"] = self.omega
            f["rho"] = self.rho
            f.attrs["grid"] = json.dumps(self.grid, sort_keys=True)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "R2slTable":
        """Read a table written by :meth:`save`."""
        try:
            with h5py.File(path, "r") as f:
                return cls(tau=f["tau"][()], omega=f["omega"][()], rho=f["rho"][()], grid=json.loads(f.attrs["grid"]))
        except (OSError, KeyError) as err:
            raise ValueError(f"{path}: not an R2sl table (datasets tau, omega, rho expected): {err}") from err

    # ------------------------------------------------------------------ lookup
    def _tensors(self, device: torch.device) -> tuple[torch.Tensor, float, float, float, float]:
        key = str(device)
        if key not in self._cache:
            self._cache[key] = torch.as_tensor(self.rho, dtype=torch.float64, device=device)
        return (
            self._cache[key],
            float(self.tau[0]),
            float(self.tau[1] - self.tau[0]),
            float(self.omega[0]),
            float(self.omega[1] - self.omega[0]),
        )

    def lookup(
        self, trf: torch.Tensor, alpha: torch.Tensor, b1: torch.Tensor, t2s: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """R2sl (1/s) and its derivatives dR2sl/dT2s (1/s^2) and dR2sl/dB1 (1/s), broadcast.

        Raises ``ValueError`` naming the offending value and the grid range if a query falls
        outside the table (no extrapolation).
        """
        trf, alpha, b1, t2s = torch.broadcast_tensors(trf, alpha, b1, t2s)
        rho, tau0, dtau, om0, dom = self._tensors(trf.device)
        tau = trf / t2s
        aa = alpha.abs()
        om = b1 * aa * t2s / trf
        ntau, nom = rho.shape
        tau_hi = tau0 + dtau * (ntau - 1)
        om_hi = om0 + dom * (nom - 1)
        tol = 1e-9
        for name, val, lo, hi, explain in (
            ("tau = TRF/T2s", tau, tau0, tau_hi, "TRF in [trf_min, trf_max] and T2s in [t2s_min, t2s_max]"),
            ("Omega = B1*|alpha|*T2s/TRF", om, om0, om_hi, "B1*omega1*T2s <= b1_max*omega1_max*t2s_max"),
        ):
            bad = (val < lo * (1 - tol)) | (val > hi * (1 + tol)) | ~torch.isfinite(val)
            if bool(bad.any()):
                idx = int(torch.nonzero(bad.reshape(-1))[0])
                raise ValueError(
                    f"R2sl table: {name} = {float(val.reshape(-1)[idx]):.6g} outside the grid range "
                    f"[{lo:.6g}, {hi:.6g}] (TRF={float(trf.reshape(-1)[idx]):.6g} s, "
                    f"alpha={float(alpha.reshape(-1)[idx]):.6g} rad, B1={float(b1.reshape(-1)[idx]):.6g}, "
                    f"T2s={float(t2s.reshape(-1)[idx]):.6g} s); the table covers {explain} with grid {self.grid}; "
                    "widen the 'r2sl' grid in the config"
                )
        x = ((tau - tau0) / dtau).clamp(0, ntau - 1)
        y = ((om - om0) / dom).clamp(0, nom - 1)
        i = x.floor().long().clamp(max=ntau - 2)
        j = y.floor().long().clamp(max=nom - 2)
        u = x - i
        v = y - j
        r00 = rho[i, j]
        r10 = rho[i + 1, j]
        r01 = rho[i, j + 1]
        r11 = rho[i + 1, j + 1]
        val = (1 - u) * (1 - v) * r00 + u * (1 - v) * r10 + (1 - u) * v * r01 + u * v * r11
        drho_dtau = ((1 - v) * (r10 - r00) + v * (r11 - r01)) / dtau
        drho_dom = ((1 - u) * (r01 - r00) + u * (r11 - r10)) / dom
        r2sl = val / t2s
        dr2sl_dt2s = (drho_dtau * (-trf / t2s**2) + drho_dom * (b1 * aa / trf)) / t2s - val / t2s**2
        dr2sl_db1 = drho_dom * (aa / trf)
        return r2sl, dr2sl_dt2s, dr2sl_db1



_DEFAULT: dict[str, R2slTable] = {}


def default_table(**grid: float) -> R2slTable:
    """The R2sl table of docs/physics.md (or of the given grid), built once and cached on disk.

    A second process loads the cached file instead of rebuilding it.
    """
    spec = {**DEFAULT_GRID, "h": 0.1, **grid}
    key = _grid_hash(spec)
    if key in _DEFAULT:
        return _DEFAULT[key]
    path = cache_dir() / f"r2sl_{key}.h5"
    if path.exists():
        table = R2slTable.load(path)
    else:
        log.info("building R2sl table (cached afterwards in %s)", path)
        table = R2slTable.build(**spec)
        table.save(path)
    _DEFAULT[key] = table
    return table
