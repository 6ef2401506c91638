"""Directional derivatives of the pulse propagators applied to one vector each (CPU, numba).

The forward sensitivities of the steady state need, for pulse n and direction k, only the vector
``L(A_n, E_nk) v_n`` (the Frechet derivative of exp at the pulse generator A_n in the direction
E_nk = dA_n/dtheta_k, applied to the state v_n = Rz Pfp_n m_{n-1} that enters the pulse), never
the full 6x6 derivative matrix.  With the [13/13] Pade approximant r(X) = q(X)^{-1} p(X) at the
scaled level X = 2^-s A (computed once by :func:`crbnn.physics.expm_cpu.expm_cached_cpu`):

* dr(X)[E] y = q^{-1} (dp[E] y - dq[E] (r y)), and with p(X) = sum_k b_k X^k,
  dp[E] y - dq[E] z = sum_{i=0}^{12} X^i E w_i,  w_i = sum_{k>i} b_k X^{k-1-i} (y - (-1)^k z),
  so the w_i follow from two Horner recurrences (shared by all directions) and each direction costs
  one Horner recurrence of 12 sparse matrix-vector products and one 5x5 triangular solve;
* squaring: d(r^m v) = sum_{j<m} r^{m-1-j} dr[E 2^-s](r^j v) with m = 2^s, accumulated as
  acc <- r acc + q dr(r^j v), and q^{-1} applied once at the end (r and q^{-1} commute).

This is mathematically the derivative the full algorithm (Al-Mohy & Higham 2009) computes, at
about a fifth of its floating-point work for the 7 directions of the paper model.  The generators
and directions have the sparsity pattern of the Hamiltonian of docs/physics.md section 2 (15 entries);
directions are built inside the kernel from per-signal coefficients of the elementary directions
(see :func:`pulse_directional_cpu`), so no [S, N, 6, K, 6] tensor is ever formed.
"""

from __future__ import annotations

import numpy as np
import torch

from crbnn.common._numba import numba
from crbnn.physics.expm_cpu import (
    _B0,
    _B1,
    _B2,
    _B3,
    _B4,
    _B5,
    _B6,
    _B7,
    _B8,
    _B9,
    _B10,
    _B11,
    _B12,
    _B13,
    BLOCK,
    PadeCache,
)

__all__ = ["pulse_directional_cpu", "ELEMENTARY_CPU"]

#: order of the per-signal elementary coefficients ``coef[..., e]`` (R2sl is per pulse: ``cr2``)
ELEMENTARY_CPU = ("m0s", "R1f", "R1s", "R2f", "Rex", "omega0", "B1w")

_BC = np.array([_B0, _B1, _B2, _B3, _B4, _B5, _B6, _B7, _B8, _B9, _B10, _B11, _B12, _B13])
#: lanes processed together inside a block of ``BLOCK`` (working set within the L1 cache)
SUB = 32
_JIT = dict(fastmath=False, cache=True, error_model="numpy", nogil=True)


@numba.njit(**_JIT)
def _spmv6(x, w, out):  # pragma: no cover - compiled
    """out[0:5] = x w for a full 6-vector w (x with the Hamiltonian's 15-entry pattern)."""
    for l in range(SUB):
        w0, w1, w2, w3, w4, w5 = w[0, l], w[1, l], w[2, l], w[3, l], w[4, l], w[5, l]
        out[0, l] = x[0, 0, l] * w0 + x[0, 1, l] * w1 + x[0, 2, l] * w2
        out[1, l] = x[1, 0, l] * w0 + x[1, 1, l] * w1
        out[2, l] = x[2, 0, l] * w0 + x[2, 2, l] * w2 + x[2, 4, l] * w4 + x[2, 5, l] * w5
        out[3, l] = x[3, 3, l] * w3 + x[3, 4, l] * w4
        out[4, l] = x[4, 2, l] * w2 + x[4, 3, l] * w3 + x[4, 4, l] * w4 + x[4, 5, l] * w5


#: the 15 entries (row, column) of the Hamiltonian pattern, rows 0-4
_PATTERN = np.array([(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 0), (2, 2), (2, 4), (2, 5), (3, 3), (3, 4), (4, 2), (4, 3), (4, 4), (4, 5)])


@numba.njit(**_JIT)
def _horner_step(x, a, ev, erow, ecol, nnz, w, out):  # pragma: no cover - compiled
    """out[0:5] = x a + E w; a a 5-vector (6th entry 0), E given by its nnz entries (values ev[t], lanes last)."""
    for l in range(SUB):
        a0, a1, a2, a3, a4 = a[0, l], a[1, l], a[2, l], a[3, l], a[4, l]
        out[0, l] = x[0, 0, l] * a0 + x[0, 1, l] * a1 + x[0, 2, l] * a2
        out[1, l] = x[1, 0, l] * a0 + x[1, 1, l] * a1
        out[2, l] = x[2, 0, l] * a0 + x[2, 2, l] * a2 + x[2, 4, l] * a4
        out[3, l] = x[3, 3, l] * a3 + x[3, 4, l] * a4
        out[4, l] = x[4, 2, l] * a2 + x[4, 3, l] * a3 + x[4, 4, l] * a4
    for t in range(nnz):
        i = erow[t]
        j = ecol[t]
        for l in range(SUB):
            out[i, l] += ev[t, l] * w[j, l]


@numba.njit(**_JIT)
def _solve5v(lu, piv, dinv, x):  # pragma: no cover - compiled
    """x[0:5] <- M5^{-1} x in place for every lane (LU factors of crbnn.physics.expm_cpu._lu5)."""
    for l in range(SUB):
        for c in range(5):
            p = piv[c, l]
            if p != c:
                t = x[c, l]
                x[c, l] = x[p, l]
                x[p, l] = t
    for i in range(1, 5):
        for c in range(i):
            for l in range(SUB):
                x[i, l] -= lu[i, c, l] * x[c, l]
    for i in range(4, -1, -1):
        for c in range(i + 1, 5):
            for l in range(SUB):
                x[i, l] -= lu[i, c, l] * x[c, l]
        for l in range(SUB):
            x[i, l] *= dinv[i, l]


@numba.njit(**_JIT)
def _fill_directions(ek, nb_left, b0, n_pulses, trf, scale, w1p, pars, coef, cr2):  # pragma: no cover - compiled
    """ek[k, :, :, l] = dH/dtheta_k TRF_n 2^-s of lane l (Hamiltonian pattern, rows 0-4; ``ek`` zeroed).

    Lane ``b0 + l`` is pulse n of signal s (``b = s N + n``); ``scale[l]`` = 2^-s of the lane's Pade
    scaling; only the first ``nb_left`` lanes are filled.  Pulse 1 keeps the semi-solid block only (as
    its generator): the R2sl and B1 w1 entries of rows xs, zs.
    """
    k_dirs = coef.shape[1]
    for l in range(min(SUB, nb_left)):
        b = b0 + l
        s = b // n_pulses
        n = b - s * n_pulses
        f = trf[n] * scale[l]
        w1 = w1p[n]
        m0s, r1f, r1s, rex = pars[s, 0], pars[s, 1], pars[s, 2], pars[s, 3]
        for k in range(k_dirs):
            cm, c1f, c1s, c2f, cx, cw, cb = (
                coef[s, k, 0], coef[s, k, 1], coef[s, k, 2], coef[s, k, 3], coef[s, k, 4], coef[s, k, 5], coef[s, k, 6]
            )
            cr = cr2[s, n, k]
            ek[k, 3, 3, l] = -cr * f
            ek[k, 3, 4, l] = cb * w1 * f
            ek[k, 4, 3, l] = -cb * w1 * f
            if n == 0:
                continue
            ek[k, 0, 0, l] = -c2f * f
            ek[k, 0, 1, l] = -cw * f
            ek[k, 0, 2, l] = cb * w1 * f
            ek[k, 1, 0, l] = cw * f
            ek[k, 1, 1, l] = -c2f * f
            ek[k, 2, 0, l] = -cb * w1 * f
            ek[k, 2, 2, l] = (-cm * rex - c1f - cx * m0s) * f
            ek[k, 2, 4, l] = (-cm * rex + cx * (1.0 - m0s)) * f
            ek[k, 2, 5, l] = (-cm * r1f + c1f * (1.0 - m0s)) * f
            ek[k, 4, 2, l] = (cm * rex + cx * m0s) * f
            ek[k, 4, 4, l] = (cm * rex - c1s - cx * (1.0 - m0s)) * f
            ek[k, 4, 5, l] = (cm * r1s + c1s * m0s) * f


@numba.njit(**_JIT)
def _compact_directions(ek, ev, erow, ecol, nnz):  # pragma: no cover - compiled
    """Per direction k only the pattern entries that are non-zero in some lane: ``nnz[k]`` entries
    at (``erow[k, t]``, ``ecol[k, t]``) with lane values ``ev[k, t]``."""
    for k in range(ek.shape[0]):
        for t in range(15):
            i, j = _PATTERN[t, 0], _PATTERN[t, 1]
            used = False
            for l in range(SUB):
                if ek[k, i, j, l] != 0.0:
                    used = True
            if used:
                c = nnz[k]
                erow[k, c] = i
                ecol[k, c] = j
                for l in range(SUB):
                    ev[k, c, l] = ek[k, i, j, l]
                nnz[k] = c + 1


@numba.njit(**_JIT)
def _powers(r, v, b0, nb_left, y):  # pragma: no cover - compiled
    """y[j] = r^j v for j = 0..len(y)-1 on every lane (lanes past ``nb_left`` start from 0)."""
    for l in range(SUB):
        for i in range(6):
            y[0, i, l] = v[b0 + l, i] if l < nb_left else 0.0
    for j in range(y.shape[0] - 1):
        for i in range(5):
            for l in range(SUB):
                acc = 0.0
                for c in range(6):
                    acc += r[i, c, l] * y[j, c, l]
                y[j + 1, i, l] = acc
        for l in range(SUB):
            y[j + 1, 5, l] = y[j, 5, l]


@numba.njit(**_JIT)
def _pade_weights(x, yj, yr, wv, wp, wq, tp, tq):  # pragma: no cover - compiled
    """The weights w_i (i = 0..12) of dp[E] y - dq[E] z = sum_i X^i E w_i for y = ``yj``, z = r y = ``yr``.

    w_12 = b13 (y + z); w_i = b_{i+1} (y - (-1)^{i+1} z) + x w_{i+1}, kept as the two Horner
    recurrences wp (of y) and wq (of z), w_i = wp - wq.  Shared by all directions.
    """
    for i in range(6):
        for l in range(SUB):
            wp[i, l] = _BC[13] * yj[i, l]
            wq[i, l] = -_BC[13] * yr[i, l]
            wv[12, i, l] = wp[i, l] - wq[i, l]
    for ii in range(11, -1, -1):
        c = _BC[ii + 1]
        sg = -c if (ii + 1) % 2 == 1 else c
        _spmv6(x, wp, tp)
        _spmv6(x, wq, tq)
        for i in range(5):
            for l in range(SUB):
                wp[i, l] = c * yj[i, l] + tp[i, l]
                wq[i, l] = sg * yr[i, l] + tq[i, l]
                wv[ii, i, l] = wp[i, l] - wq[i, l]
        for l in range(SUB):
            wp[5, l] = c * yj[5, l]
            wq[5, l] = sg * yr[5, l]
            wv[ii, 5, l] = wp[5, l] - wq[5, l]


@numba.njit(**_JIT)
def _accumulate_direction(x, r, evk, erk, eck, nk, wv, active, dsum_k, acc, nxt):  # pragma: no cover - compiled
    """One squaring step of direction k: dsum_k <- r dsum_k + q(x) dr(y_j) on the active lanes.

    q(x) dr(y_j) = sum_i X^i E w_i by a Horner recurrence of 12 sparse products (E in compact form);
    q^{-1} is applied once at the end (r and q^{-1} are both functions of x and commute).
    """
    for i in range(5):
        for l in range(SUB):
            acc[i, l] = 0.0
    _horner_step(x, acc, evk, erk, eck, nk, wv[12], nxt)
    for ii in range(11, -1, -1):
        _horner_step(x, nxt, evk, erk, eck, nk, wv[ii], acc)
        for i in range(5):
            for l in range(SUB):
                nxt[i, l] = acc[i, l]
    for i in range(5):
        for l in range(SUB):
            t = nxt[i, l]
            for c in range(5):
                t += r[i, c, l] * dsum_k[c, l]
            acc[i, l] = t
    for i in range(5):
        for l in range(SUB):
            dsum_k[i, l] = active[l] * acc[i, l] + (1.0 - active[l]) * dsum_k[i, l]


@numba.njit(parallel=True, **_JIT)
def _directional_kernel(xc, rc, luc, pivc, dinvc, scc, svc, v, n_pulses, trf, w1p, pars, coef, cr2, out):  # pragma: no cover
    """out[b, :, k] = L(A_b, E_bk) v_b for every lane b (see the module docstring and
    :func:`pulse_directional_cpu`).

    ``xc, rc, luc, pivc, dinvc, scc, svc``: the Pade cache of :func:`crbnn.physics.expm_cpu.expm_cached_cpu`
    in blocks of ``BLOCK`` lanes (lanes last): the scaled generators X = 2^-s A, r(X), the LU factors
    of q(X) (5x5), the scale 2^-s and the squaring count s of each lane.  Blocks run in parallel;
    within a block, groups of ``SUB`` lanes: build and compact the directions, the powers y_j = r^j v,
    then per squaring step j the Pade weights (shared) and one Horner recurrence per direction, and
    finally q^{-1} on the accumulated sums.  Row 6 (the constant) of every derivative is 0.
    """
    bsz = v.shape[0]
    k_dirs = coef.shape[1]
    nblk = (bsz + BLOCK - 1) // BLOCK
    for blk in numba.prange(nblk):
        b0 = blk * BLOCK
        nb = min(BLOCK, bsz - b0)
        sv = svc[blk]
        for l0 in range(0, BLOCK, SUB):
            x = xc[blk, :, :, l0:l0 + SUB].copy()
            r = rc[blk, :, :, l0:l0 + SUB].copy()
            lu = luc[blk, :, :, l0:l0 + SUB].copy()
            piv = pivc[blk, :, l0:l0 + SUB].copy()
            dinv = dinvc[blk, :, l0:l0 + SUB].copy()
            smax = 0
            for l in range(l0, min(l0 + SUB, nb)):
                if sv[l] > smax:
                    smax = sv[l]
            mmax = 1 << smax
            ek = np.zeros((k_dirs, 5, 6, SUB))
            _fill_directions(ek, nb - l0, b0 + l0, n_pulses, trf, scc[blk, l0:l0 + SUB], w1p, pars, coef, cr2)
            ev = np.zeros((k_dirs, 15, SUB))
            erow = np.zeros((k_dirs, 15), dtype=np.int64)
            ecol = np.zeros((k_dirs, 15), dtype=np.int64)
            nnz = np.zeros(k_dirs, dtype=np.int64)
            _compact_directions(ek, ev, erow, ecol, nnz)
            y = np.zeros((mmax + 1, 6, SUB))
            _powers(r, v, b0 + l0, nb - l0, y)
            dsum = np.zeros((k_dirs, 5, SUB))
            wv = np.empty((13, 6, SUB))
            wp = np.empty((6, SUB))
            wq = np.empty((6, SUB))
            tp = np.empty((5, SUB))
            tq = np.empty((5, SUB))
            acc = np.empty((5, SUB))
            nxt = np.empty((5, SUB))
            active = np.empty(SUB)
            for j in range(mmax):
                for l in range(SUB):
                    active[l] = 1.0 if j < (1 << sv[l0 + l]) else 0.0
                _pade_weights(x, y[j], y[j + 1], wv, wp, wq, tp, tq)
                for k in range(k_dirs):
                    _accumulate_direction(x, r, ev[k], erow[k], ecol[k], nnz[k], wv, active, dsum[k], acc, nxt)
            for k in range(k_dirs):
                for i in range(5):
                    for l in range(SUB):
                        acc[i, l] = dsum[k, i, l]
                _solve5v(lu, piv, dinv, acc)
                for i in range(5):
                    for l in range(SUB):
                        dsum[k, i, l] = acc[i, l]
            for l in range(SUB):
                if l0 + l < nb:
                    for k in range(k_dirs):
                        for i in range(5):
                            out[b0 + l0 + l, i, k] = dsum[k, i, l]
                        out[b0 + l0 + l, 5, k] = 0.0


def pulse_directional_cpu(
    cache: PadeCache,
    v: torch.Tensor,
    trf: torch.Tensor,
    w1: torch.Tensor,
    pars: torch.Tensor,
    coef: torch.Tensor,
    cr2: torch.Tensor,
) -> torch.Tensor:
    """L(A_b, E_bk) v_b [B, 6, K] for the pulse generators A_b cached by ``expm_cached_cpu``.

    Lane ``b = s N + n`` is pulse ``n`` of signal ``s`` (``N = len(trf)``); ``v`` [B, 6] the
    vectors; ``trf`` [N] (s) and ``w1`` [N] (rad/s, B1 = 1) per pulse; ``pars`` [S, 4] the
    per-signal m0s, R1f, R1s, Rex (1, 1/s, 1/s, 1/s); ``coef`` [S, K, 7] the coefficients of the
    elementary directions :data:`ELEMENTARY_CPU` in direction k (dH/dtheta_k = sum_e coef_e dH/de);
    ``cr2`` [S, N, K] the coefficient of the R2sl direction (per pulse).  The direction matrices are
    dH/dtheta_k TRF_n with the entries of :func:`crbnn.physics.hamiltonian._elementary_entries`; for pulse 1
    (the crushed inversion) only the semi-solid block (R2sl, B1 w1) is kept, as in its generator.
    Requires ``expm_cached_cpu`` to have been called on exactly these generators.
    """
    vn = np.ascontiguousarray(v.detach().numpy())
    bsz = vn.shape[0]
    k = coef.shape[1]
    out = np.empty((bsz, 6, k))
    if bsz and k:
        numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
        _directional_kernel(
            *cache, vn, int(trf.shape[0]), np.ascontiguousarray(trf.numpy()), np.ascontiguousarray(w1.numpy()),
            np.ascontiguousarray(pars.numpy()), np.ascontiguousarray(coef.numpy()), np.ascontiguousarray(cr2.numpy()), out,
        )
    return torch.from_numpy(out)
