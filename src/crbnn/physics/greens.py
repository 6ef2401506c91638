"""Green's function of the super-Lorentzian lineshape (docs/physics.md section 3).

The generalized Bloch model describes the semi-solid pool by the memory kernel

    G(kappa) = integral_0^1 exp(-kappa^2 (3 z^2 - 1)^2 / 8) dz,   kappa = (t - tau) / T2s,

with G(0) = 1 and G(kappa) ~ sqrt(2 pi / 3) / kappa for large kappa.  The integrand peaks at the
magic angle z = 1/sqrt(3) with width ~1/kappa, so the integral is split there and each half is
integrated with Gauss-Legendre quadrature, whose nodes cluster at the interval ends.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import roots_legendre

_MAGIC = 1.0 / np.sqrt(3.0)


@lru_cache(maxsize=4)
def _nodes(n: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x, w = roots_legendre(n)
    # two halves [0, 1/sqrt(3)] and [1/sqrt(3), 1]
    a0, b0, a1, b1 = 0.0, _MAGIC, _MAGIC, 1.0
    z = np.concatenate([(b0 - a0) / 2 * x + (b0 + a0) / 2, (b1 - a1) / 2 * x + (b1 + a1) / 2])
    wz = np.concatenate([(b0 - a0) / 2 * w, (b1 - a1) / 2 * w])
    return z, wz


def greens_superlorentzian(kappa: ArrayLike, n_nodes: int = 600) -> NDArray[np.float64]:
    """Super-Lorentzian Green's function G(kappa) (dimensionless), float64, any array shape.

    ``kappa`` is the time lag in units of T2s.  Quadrature with ``n_nodes`` Gauss-Legendre
    nodes on each side of the magic angle; the default is accurate to ~1e-15 for kappa <= 200.

    >>> round(float(greens_superlorentzian(10.0)), 12)  # docs/physics.md oracle 0.14712468680944424
    0.147124686809
    >>> float(greens_superlorentzian(0.0))
    1.0
    """
    k = np.asarray(kappa, dtype=np.float64)
    z, w = _nodes(n_nodes)
    u = (3.0 * z * z - 1.0) ** 2 / 8.0
    flat = k.reshape(-1, 1)
    out = np.exp(-(flat * flat) * u[None, :]) @ w
    return out.reshape(k.shape)
