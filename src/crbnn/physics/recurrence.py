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
    from crbnn.common._numba import numba

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
        rows = g.shape[2]
        for s in numba.prange(s_count):
            cur = np.zeros((d, kk))
            nxt = np.empty((d, kk))
            for i in range(rows):
                for j in range(kk):
                    g[s, 0, i, j] = 0.0
            for t in range(1, n):
                for i in range(d):
                    for j in range(kk):
                        acc = q[s, t, i, j]
                        for k in range(d):
                            acc += u[s, t, i, k] * cur[k, j]
                        nxt[i, j] = acc
                for i in range(d):
                    for j in range(kk):
                        cur[i, j] = nxt[i, j]
                for i in range(rows):
                    for j in range(kk):
                        g[s, t, i, j] = cur[i, j]
            for i in range(d):
                for j in range(kk):
                    acc = q[s, 0, i, j]
                    for k in range(d):
                        acc += u[s, 0, i, k] * cur[k, j]
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


def affine_recurrence(u: torch.Tensor, q: torch.Tensor, rows: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """g [S, N, rows, K] with g[:, 0] = 0, g_n = U_n g_{n-1} + q_n, and g_cycle = U_1 g_N + q_1 [S, d, K].

    Only the first ``rows`` rows of every g_n are returned (all d by default); the recurrence itself
    runs on all rows.

    >>> u = torch.eye(2, dtype=torch.float64).repeat(1, 3, 1, 1)
    >>> q = torch.ones(1, 3, 2, 1, dtype=torch.float64)
    >>> g, gc = affine_recurrence(u, q)
    >>> g[0, :, 0, 0].tolist(), float(gc[0, 0, 0])
    ([0.0, 1.0, 2.0], 3.0)
    """
    rows = q.shape[2] if rows is None else rows
    if not _use_numba(u, q):
        g, gc = _affine_recurrence_torch(u, q)
        return g[:, :, :rows], gc
    un = np.ascontiguousarray(u.numpy())
    qn = np.ascontiguousarray(q.numpy())
    g = np.empty((qn.shape[0], qn.shape[1], rows, qn.shape[3]))
    gc = np.empty((qn.shape[0], qn.shape[2], qn.shape[3]))
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
    _affine_recurrence_nb(un, qn, g, gc)
    return torch.from_numpy(g), torch.from_numpy(gc)


# ----------------------------------------------------------------------------- per-pulse composition
# U_n = Pfp Ppulse Rz Pfp, the echo states m_n = Phi_n m_1, the tangent sources
# q_n = dU_n m_{n-1} and the corrected tangents dm_n = g_n + Phi_n dm_1.  Free-precession
# operators are given once per distinct interval (``pf`` [S, nu, 6, 6], ``dpf`` [S, nu, 6, K, 6])
# with the index ``inv`` [N] of each pulse's interval.

_RZ = (-1.0, -1.0, 1.0, 1.0, 1.0, 1.0)


def _compose_torch(pf, inv, pp):
    rz = torch.tensor(_RZ, dtype=pp.dtype, device=pp.device)
    pfn = pf[:, inv]
    return pfn @ (pp @ (rz[:, None] * pfn))


def _sources_torch(pf, dpf, inv, pp, dpp, m):
    m_prev = torch.cat([m[:, -1:], m[:, :-1]], dim=1)  # m_{n-1}; for n = 1 it is m_N
    rz = torch.tensor(_RZ, dtype=pp.dtype, device=pp.device)
    pfn = pf[:, inv]
    dpfn = dpf[:, inv]
    mv = lambda dm, v: torch.einsum("...ikj,...j->...ik", dm, v)  # noqa: E731
    v1 = (pfn @ m_prev[..., None])[..., 0]
    v2 = rz * v1
    v3 = (pp @ v2[..., None])[..., 0]
    inner = mv(dpp, v2) + pp @ (rz[:, None] * mv(dpfn, m_prev))
    return mv(dpfn, v3) + pfn @ inner


if _HAVE_NUMBA:

    @numba.njit(parallel=True, cache=True)
    def _compose_nb(pf, inv, pp, u):  # pragma: no cover - compiled
        s_count, n = pp.shape[:2]
        w = np.empty((s_count, 6, 6))
        for s in numba.prange(s_count):
            for t in range(n):
                f = pf[s, inv[t]]
                p = pp[s, t]
                # w = Ppulse Rz Pfp
                for i in range(6):
                    for j in range(6):
                        acc = 0.0
                        for k in range(6):
                            rzk = -1.0 if k < 2 else 1.0
                            acc += p[i, k] * rzk * f[k, j]
                        w[s, i, j] = acc
                for i in range(6):
                    for j in range(6):
                        acc = 0.0
                        for k in range(6):
                            acc += f[i, k] * w[s, k, j]
                        u[s, t, i, j] = acc

    @numba.njit(parallel=True, cache=True)
    def _sources_nb(pf, dpf, inv, pp, dpp, mstates, q):  # pragma: no cover - compiled
        s_count, n = pp.shape[:2]
        kk = dpp.shape[3]
        for s in numba.prange(s_count):
            v1 = np.empty(6)
            v2 = np.empty(6)
            v3 = np.empty(6)
            a = np.empty((6, kk))
            b = np.empty((6, kk))
            for t in range(n):
                f = pf[s, inv[t]]
                df = dpf[s, inv[t]]
                p = pp[s, t]
                dp = dpp[s, t]
                m = mstates[s, t - 1] if t > 0 else mstates[s, n - 1]
                for i in range(6):
                    acc = 0.0
                    for j in range(6):
                        acc += f[i, j] * m[j]
                    v1[i] = acc
                    v2[i] = -acc if i < 2 else acc
                for i in range(6):
                    acc = 0.0
                    for j in range(6):
                        acc += p[i, j] * v2[j]
                    v3[i] = acc
                # a = Rz (dPfp m)
                for i in range(6):
                    sg = -1.0 if i < 2 else 1.0
                    for k in range(kk):
                        acc = 0.0
                        for j in range(6):
                            acc += df[i, k, j] * m[j]
                        a[i, k] = sg * acc
                # b = dPpulse v2 + Ppulse a
                for i in range(6):
                    for k in range(kk):
                        acc = 0.0
                        for j in range(6):
                            acc += dp[i, k, j] * v2[j] + p[i, j] * a[j, k]
                        b[i, k] = acc
                # q = dPfp v3 + Pfp b
                for i in range(6):
                    for k in range(kk):
                        acc = 0.0
                        for j in range(6):
                            acc += df[i, k, j] * v3[j] + f[i, j] * b[j, k]
                        q[s, t, i, k] = acc

    @numba.njit(parallel=True, cache=True)
    def _states_nb(phi, m1, m):  # pragma: no cover - compiled
        s_count, n = phi.shape[:2]
        for s in numba.prange(s_count):
            for t in range(n):
                for i in range(6):
                    acc = 0.0
                    for j in range(6):
                        acc += phi[s, t, i, j] * m1[s, j]
                    m[s, t, i] = acc

    @numba.njit(parallel=True, cache=True)
    def _correct_nb(g, phi, dm1, dm):  # pragma: no cover - compiled
        s_count, n, rows, kk = g.shape
        for s in numba.prange(s_count):
            for t in range(n):
                for i in range(rows):
                    for k in range(kk):
                        acc = g[s, t, i, k]
                        for j in range(6):
                            acc += phi[s, t, i, j] * dm1[s, j, k]
                        dm[s, t, i, k] = acc


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.numpy())


def _threads() -> None:
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


def compose_repetition(pf: torch.Tensor, inv: torch.Tensor, pp: torch.Tensor) -> torch.Tensor:
    """U_n = Pfp_n Ppulse_n Rz(pi) Pfp_n, [S, N, 6, 6] (Pfp given per distinct interval)."""
    if not _use_numba(pf, pp):
        return _compose_torch(pf, inv, pp)
    _threads()
    u = np.empty(pp.shape)
    _compose_nb(_np(pf), _np(inv.to(torch.int64)), _np(pp), u)
    return torch.from_numpy(u)


def tangent_sources(pf, dpf, inv, pp, dpp, m) -> torch.Tensor:
    """q_n = dU_n m_{n-1} [S, N, 6, K] (m_0 = m_N) by the product rule over Pfp, Ppulse, Rz, Pfp."""
    if not _use_numba(pf, dpf, pp, dpp, m):
        return _sources_torch(pf, dpf, inv, pp, dpp, m)
    _threads()
    q = np.empty((*pp.shape[:3], dpp.shape[3]))
    _sources_nb(_np(pf), _np(dpf), _np(inv.to(torch.int64)), _np(pp), _np(dpp), _np(m), q)
    return torch.from_numpy(q)


if _HAVE_NUMBA:

    @numba.njit(parallel=True, cache=True)
    def _pulse_inputs_nb(pf, inv, mstates, v2):  # pragma: no cover - compiled
        s_count, n = mstates.shape[:2]
        for s in numba.prange(s_count):
            for t in range(n):
                f = pf[s, inv[t]]
                m = mstates[s, t - 1] if t > 0 else mstates[s, n - 1]
                for i in range(6):
                    acc = 0.0
                    for j in range(6):
                        acc += f[i, j] * m[j]
                    v2[s, t, i] = -acc if i < 2 else acc

    @numba.njit(parallel=True, cache=True)
    def _sources_dpv_nb(pf, dpf, inv, pp, dpv, v2all, mstates, q):  # pragma: no cover - compiled
        s_count, n = pp.shape[:2]
        kk = dpv.shape[3]
        for s in numba.prange(s_count):
            v3 = np.empty(6)
            a = np.empty((6, kk))
            b = np.empty((6, kk))
            for t in range(n):
                f = pf[s, inv[t]]
                df = dpf[s, inv[t]]
                p = pp[s, t]
                v2 = v2all[s, t]
                m = mstates[s, t - 1] if t > 0 else mstates[s, n - 1]
                for i in range(6):
                    acc = 0.0
                    for j in range(6):
                        acc += p[i, j] * v2[j]
                    v3[i] = acc
                for i in range(6):
                    sg = -1.0 if i < 2 else 1.0
                    for k in range(kk):
                        acc = 0.0
                        for j in range(6):
                            acc += df[i, k, j] * m[j]
                        a[i, k] = sg * acc
                for i in range(6):
                    for k in range(kk):
                        acc = dpv[s, t, i, k]
                        for j in range(6):
                            acc += p[i, j] * a[j, k]
                        b[i, k] = acc
                for i in range(6):
                    for k in range(kk):
                        acc = 0.0
                        for j in range(6):
                            acc += df[i, k, j] * v3[j] + f[i, j] * b[j, k]
                        q[s, t, i, k] = acc


    @numba.njit(parallel=True, cache=True)
    def _sources_dpv_fp_nb(pf, dpf, inv, pp, dpv, v2all, mstates, q):  # pragma: no cover - compiled
        """As _sources_dpv_nb for free-precession operators with the block pattern of _FP_PATTERN."""
        s_count, n = pp.shape[:2]
        kk = dpv.shape[3]
        for s in numba.prange(s_count):
            v3 = np.empty(6)
            b = np.empty((6, kk))
            for t in range(n):
                f = pf[s, inv[t]]
                df = dpf[s, inv[t]]
                p = pp[s, t]
                v2 = v2all[s, t]
                m = mstates[s, t - 1] if t > 0 else mstates[s, n - 1]
                for i in range(6):
                    acc = 0.0
                    for j in range(6):
                        acc += p[i, j] * v2[j]
                    v3[i] = acc
                for k in range(kk):
                    # a = Rz dPfp m (rows 3 and 5 vanish)
                    a0 = -(df[0, k, 0] * m[0] + df[0, k, 1] * m[1])
                    a1 = -(df[1, k, 0] * m[0] + df[1, k, 1] * m[1])
                    a2 = df[2, k, 2] * m[2] + df[2, k, 4] * m[4] + df[2, k, 5] * m[5]
                    a4 = df[4, k, 2] * m[2] + df[4, k, 4] * m[4] + df[4, k, 5] * m[5]
                    # b = dPpulse v2 + Ppulse a
                    for i in range(6):
                        b[i, k] = dpv[s, t, i, k] + p[i, 0] * a0 + p[i, 1] * a1 + p[i, 2] * a2 + p[i, 4] * a4
                    # q = dPfp v3 + Pfp b
                    q[s, t, 0, k] = df[0, k, 0] * v3[0] + df[0, k, 1] * v3[1] + f[0, 0] * b[0, k] + f[0, 1] * b[1, k]
                    q[s, t, 1, k] = df[1, k, 0] * v3[0] + df[1, k, 1] * v3[1] + f[1, 0] * b[0, k] + f[1, 1] * b[1, k]
                    q[s, t, 2, k] = (df[2, k, 2] * v3[2] + df[2, k, 4] * v3[4] + df[2, k, 5] * v3[5]
                                     + f[2, 2] * b[2, k] + f[2, 4] * b[4, k] + f[2, 5] * b[5, k])
                    q[s, t, 3, k] = 0.0
                    q[s, t, 4, k] = (df[4, k, 2] * v3[2] + df[4, k, 4] * v3[4] + df[4, k, 5] * v3[5]
                                     + f[4, 2] * b[2, k] + f[4, 4] * b[4, k] + f[4, 5] * b[5, k])
                    q[s, t, 5, k] = f[5, 5] * b[5, k]


#: non-zero entries of the free-precession operators Dxs exp(H_fp tau) (no RF: the free pool's
#: transverse block, the longitudinal block with the constant, the xs row spoiled)
_FP_PATTERN = torch.zeros(6, 6, dtype=torch.bool)
for _i, _j in ((0, 0), (0, 1), (1, 0), (1, 1), (2, 2), (2, 4), (2, 5), (4, 2), (4, 4), (4, 5), (5, 5)):
    _FP_PATTERN[_i, _j] = True


def pulse_inputs(pf: torch.Tensor, inv: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """v_n = Rz(pi) Pfp_n m_{n-1} [S, N, 6] (m_0 = m_N): the state entering pulse n (numba, CPU)."""
    _threads()
    v2 = np.empty(m.shape)
    _pulse_inputs_nb(_np(pf), _np(inv.to(torch.int64)), _np(m), v2)
    return torch.from_numpy(v2)


def tangent_sources_dpv(pf, dpf, inv, pp, dpv, v2, m) -> torch.Tensor:
    """q_n = dU_n m_{n-1} [S, N, 6, K] as :func:`tangent_sources`, with the pulse term given as vectors.

    ``dpv`` [S, N, 6, K] = dPpulse_n v_n (v_n from :func:`pulse_inputs`), so that the pulse
    derivatives never need to be formed as matrices (numba, CPU).
    """
    _threads()
    q = np.empty((*pp.shape[:3], dpv.shape[3]))
    off = ~_FP_PATTERN
    block = not bool(pf[..., off].any()) and not bool(dpf.transpose(-2, -3)[..., off].any())
    kernel = _sources_dpv_fp_nb if block else _sources_dpv_nb  # the block kernel skips the known zeros
    kernel(_np(pf), _np(dpf), _np(inv.to(torch.int64)), _np(pp), _np(dpv), _np(v2), _np(m), q)
    return torch.from_numpy(q)


def echo_states(phi: torch.Tensor, m1: torch.Tensor) -> torch.Tensor:
    """m_n = Phi_n m_1, [S, N, 6]."""
    if not _use_numba(phi, m1):
        return (phi @ m1[:, None, :, None])[..., 0]
    _threads()
    m = np.empty(phi.shape[:3])
    _states_nb(_np(phi), _np(m1), m)
    return torch.from_numpy(m)


def corrected_tangents(g: torch.Tensor, phi: torch.Tensor, dm1: torch.Tensor) -> torch.Tensor:
    """dm_n = g_n + Phi_n dm_1 [S, N, rows, K] for the first ``rows`` = g.shape[2] rows of the state."""
    if not _use_numba(g, phi, dm1):
        return g + phi[:, :, : g.shape[2]] @ dm1[:, None]
    _threads()
    dm = np.empty(g.shape)
    _correct_nb(_np(g), _np(phi), _np(dm1), dm)
    return torch.from_numpy(dm)
