"""The two sequential sweeps of the periodic steady state, for the CPU (numba) and any device (torch).

* :func:`prefix_products`: Phi_1 = I, Phi_n = U_n Phi_{n-1} (n = 2..N) and the cycle operator
  A = U_1 Phi_N;
* :func:`affine_recurrence`: g_1 = 0, g_n = U_n g_{n-1} + q_n (n = 2..N) and
  g_cycle = U_1 g_N + q_1.

On a GPU the torch loop is used (one small batched product per pulse).  On the CPU the same
recurrences run compiled with numba, parallel over signals, because a Python loop of tiny batched
products is dominated by per-call overhead there.  Both give the same numbers to rounding.
"""

from __future__ import annotations

import numpy as np
import torch

try:  # numba is a pinned dependency; the torch path keeps the library usable without it
    import numba

    _HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    _HAVE_NUMBA = False


def _prefix_products_torch(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    s, n = u.shape[:2]
    phi = torch.empty_like(u)
    cur = torch.eye(u.shape[-1], dtype=u.dtype, device=u.device).expand(s, -1, -1).clone()
    phi[:, 0] = cur
    for i in range(1, n):
        cur = u[:, i] @ cur
        phi[:, i] = cur
    return phi, u[:, 0] @ cur


def _affine_recurrence_torch(u: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = u.shape[1]
    g = torch.empty_like(q)
    cur = torch.zeros_like(q[:, 0])
    g[:, 0] = cur
    for i in range(1, n):
        cur = u[:, i] @ cur + q[:, i]
        g[:, i] = cur
    return g, u[:, 0] @ cur + q[:, 0]


if _HAVE_NUMBA:

    @numba.njit(parallel=True, cache=True)
    def _prefix_products_nb(u, phi, a):  # pragma: no cover - compiled
        s_count, n, d, _ = u.shape
        for s in numba.prange(s_count):
            for i in range(d):
                for j in range(d):
                    phi[s, 0, i, j] = 1.0 if i == j else 0.0
            for t in range(1, n):
                for i in range(d):
                    for j in range(d):
                        acc = 0.0
                        for k in range(d):
                            acc += u[s, t, i, k] * phi[s, t - 1, k, j]
                        phi[s, t, i, j] = acc
            for i in range(d):
                for j in range(d):
                    acc = 0.0
                    for k in range(d):
                        acc += u[s, 0, i, k] * phi[s, n - 1, k, j]
                    a[s, i, j] = acc

    @numba.njit(parallel=True, cache=True)
    def _affine_recurrence_nb(u, q, g, gc):  # pragma: no cover - compiled
        s_count, n, d, kk = q.shape
        for s in numba.prange(s_count):
            for i in range(d):
                for j in range(kk):
                    g[s, 0, i, j] = 0.0
            for t in range(1, n):
                for i in range(d):
                    for j in range(kk):
                        acc = q[s, t, i, j]
                        for k in range(d):
                            acc += u[s, t, i, k] * g[s, t - 1, k, j]
                        g[s, t, i, j] = acc
            for i in range(d):
                for j in range(kk):
                    acc = q[s, 0, i, j]
                    for k in range(d):
                        acc += u[s, 0, i, k] * g[s, n - 1, k, j]
                    gc[s, i, j] = acc


def _use_numba(*ts: torch.Tensor) -> bool:
    return _HAVE_NUMBA and all(t.device.type == "cpu" and t.dtype == torch.float64 for t in ts)


def prefix_products(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Partial products Phi [S, N, d, d] (Phi[:, 0] = I) and the cycle operator A [S, d, d].

    >>> u = torch.eye(2, dtype=torch.float64).repeat(1, 3, 1, 1) * 0.5
    >>> phi, a = prefix_products(u)
    >>> float(phi[0, 2, 0, 0]), float(a[0, 1, 1])
    (0.25, 0.125)
    """
    if not _use_numba(u):
        return _prefix_products_torch(u)
    un = np.ascontiguousarray(u.numpy())
    phi = np.empty_like(un)
    a = np.empty((un.shape[0], un.shape[2], un.shape[3]))
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
    _prefix_products_nb(un, phi, a)
    return torch.from_numpy(phi), torch.from_numpy(a)


def affine_recurrence(u: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """g [S, N, d, K] with g[:, 0] = 0, g_n = U_n g_{n-1} + q_n, and g_cycle = U_1 g_N + q_1 [S, d, K].

    >>> u = torch.eye(2, dtype=torch.float64).repeat(1, 3, 1, 1)
    >>> q = torch.ones(1, 3, 2, 1, dtype=torch.float64)
    >>> g, gc = affine_recurrence(u, q)
    >>> g[0, :, 0, 0].tolist(), float(gc[0, 0, 0])
    ([0.0, 1.0, 2.0], 3.0)
    """
    if not _use_numba(u, q):
        return _affine_recurrence_torch(u, q)
    un = np.ascontiguousarray(u.numpy())
    qn = np.ascontiguousarray(q.numpy())
    g = np.empty_like(qn)
    gc = np.empty((qn.shape[0], qn.shape[2], qn.shape[3]))
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
    _affine_recurrence_nb(un, qn, g, gc)
    return torch.from_numpy(g), torch.from_numpy(gc)
