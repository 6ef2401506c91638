"""Fast CPU kernel (numba) for batched 6x6 matrix exponentials with Frechet derivatives.

Drop-in replacement of :func:`crbnn.physics.expm.expm_frechet_torch` on the CPU for the matrices of the
physics model: ``a`` [B, 6, 6] and ``e`` [B, 6, K, 6] (direction k is ``e[:, :, k, :]``) real
float64 *affine generators*, i.e. the last row of every ``a`` and of every direction is exactly
zero.  Then ``expm(a)[5] = e_6`` and ``L[5] = 0`` and only rows 0-4 are computed: every product
of the algorithm is a [5, 6] x [6, 6] product whose right factor has the last row ``c e_6``
(``c`` known: 0 for generators and derivatives, 1 for ``expm``, the Pade coefficients for the
two polynomials), and ``V - U = [[M5, c], [0, b0]]`` is solved with a 5x5 LU with partial
pivoting.  Same algorithm as the torch version: Pade [13/13] with scaling and squaring (Higham
2005) and its Frechet derivative (Al-Mohy & Higham 2009, Alg. 6.4), except that the scaling
``s`` is chosen per matrix (as scipy does) rather than per chunk of 256 matrices.

Kernel layout: blocks of ``BLOCK`` matrices with the batch index last (``[5, 6, BLOCK]``), so
that the innermost loops run over the block with a compile-time trip count and LLVM vectorizes
them; ``prange`` over blocks; the K directions are processed one after the other within a block
so that the working set stays in the L1/L2 cache.

Inputs that the kernel does not handle (other n, complex dtype, non-CPU tensors, a non-zero last
row) are passed on to :func:`crbnn.physics.expm.expm_frechet_torch` unchanged.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from crbnn.common._numba import numba
from crbnn.physics.expm import THETA13, expm_frechet_torch

njit = numba.njit
prange = numba.prange

__all__ = ["expm_frechet_cpu", "expm_cached_cpu", "PadeCache", "BLOCK"]

#: matrices per SIMD block (the innermost loop length), a compile-time constant of the kernel:
#: 64 measured faster than 8/16/32 (loop overhead) and as fast as 128 (working set ~300 KB, L2)
BLOCK = 64

_B0 = 64764752532480000.0
_B1 = 32382376266240000.0
_B2 = 7771770303897600.0
_B3 = 1187353796428800.0
_B4 = 129060195264000.0
_B5 = 10559470521600.0
_B6 = 670442572800.0
_B7 = 33522128640.0
_B8 = 1323241920.0
_B9 = 40840800.0
_B10 = 960960.0
_B11 = 16380.0
_B12 = 182.0
_B13 = 1.0
_THETA = THETA13

_JIT = dict(fastmath=False, cache=True, error_model="numpy", nogil=True)


@njit(**_JIT)
def _mm(x, y, cy, out):
    """out = (x @ y)[0:5] where x, y hold rows 0-4 and y's row 5 is cy * e6."""
    for i in range(5):
        for j in range(6):
            for l in range(BLOCK):
                out[i, j, l] = (
                    x[i, 0, l] * y[0, j, l] + x[i, 1, l] * y[1, j, l] + x[i, 2, l] * y[2, j, l]
                    + x[i, 3, l] * y[3, j, l] + x[i, 4, l] * y[4, j, l]
                )
        if cy != 0.0:
            for l in range(BLOCK):
                out[i, 5, l] += cy * x[i, 5, l]


@njit(**_JIT)
def _mm2(x1, y1, c1, x2, y2, c2, out):
    """out = (x1 @ y1 + x2 @ y2)[0:5] (row 5 of y1, y2: c1 e6, c2 e6)."""
    for i in range(5):
        for j in range(6):
            for l in range(BLOCK):
                out[i, j, l] = (
                    x1[i, 0, l] * y1[0, j, l] + x1[i, 1, l] * y1[1, j, l] + x1[i, 2, l] * y1[2, j, l]
                    + x1[i, 3, l] * y1[3, j, l] + x1[i, 4, l] * y1[4, j, l]
                ) + (
                    x2[i, 0, l] * y2[0, j, l] + x2[i, 1, l] * y2[1, j, l] + x2[i, 2, l] * y2[2, j, l]
                    + x2[i, 3, l] * y2[3, j, l] + x2[i, 4, l] * y2[4, j, l]
                )
        if c1 != 0.0:
            for l in range(BLOCK):
                out[i, 5, l] += c1 * x1[i, 5, l]
        if c2 != 0.0:
            for l in range(BLOCK):
                out[i, 5, l] += c2 * x2[i, 5, l]


@njit(**_JIT)
def _lu5(m, lu, piv, dinv):
    """LU with partial pivoting of m[0:5, 0:5] for every lane (LAPACK-style row swaps in piv)."""
    for l in range(BLOCK):
        for i in range(5):
            for j in range(5):
                lu[i, j, l] = m[i, j, l]
        for c in range(5):
            p = c
            best = abs(lu[c, c, l])
            for r in range(c + 1, 5):
                v = abs(lu[r, c, l])
                if v > best:
                    best = v
                    p = r
            piv[c, l] = p
            if p != c:
                for j in range(5):
                    t = lu[c, j, l]
                    lu[c, j, l] = lu[p, j, l]
                    lu[p, j, l] = t
            d = 1.0 / lu[c, c, l]
            dinv[c, l] = d
            for r in range(c + 1, 5):
                f = lu[r, c, l] * d
                lu[r, c, l] = f
                for j in range(c + 1, 5):
                    lu[r, j, l] -= f * lu[c, j, l]


@njit(**_JIT)
def _solve5(lu, piv, dinv, x):
    """x[0:5, 0:6] <- M5^{-1} x in place, every lane."""
    for l in range(BLOCK):
        for c in range(5):
            p = piv[c, l]
            if p != c:
                for j in range(6):
                    t = x[c, j, l]
                    x[c, j, l] = x[p, j, l]
                    x[p, j, l] = t
    for i in range(1, 5):
        for j in range(6):
            for c in range(i):
                for l in range(BLOCK):
                    x[i, j, l] -= lu[i, c, l] * x[c, j, l]
    for i in range(4, -1, -1):
        for j in range(6):
            for c in range(i + 1, 5):
                for l in range(BLOCK):
                    x[i, j, l] -= lu[i, c, l] * x[c, j, l]
            for l in range(BLOCK):
                x[i, j, l] *= dinv[i, l]


@njit(**_JIT)
def _select(mask_s, step, new, old):
    """old[..., l] <- new[..., l] where step < mask_s[l]."""
    for i in range(5):
        for j in range(6):
            for l in range(BLOCK):
                if step < mask_s[l]:
                    old[i, j, l] = new[i, j, l]


@njit(**_JIT)
def _pade_block(a, b0, nb):
    """Scaled generators and the Pade [13/13] approximant of one block of matrices (lanes b0..b0+nb).

    Returns ``(x, x2, x4, x6, w1, z1, w, r, lu, piv, dinv, sc, sv, smax)``: x = a 2^-s (rows 0-4,
    lane last), its powers, the polynomial pieces W1, Z1, W, r = q(x)^{-1} p(x) at the scaled level,
    the LU factors of M5 = (V - U)[0:5, 0:5], and per lane the scale 2^-s, s, and the block's max s.
    """
    shp = (5, 6, BLOCK)
    sc = np.ones(BLOCK)
    sv = np.zeros(BLOCK, dtype=np.int64)
    x = np.zeros(shp)
    # ---- load a (rows 0-4), per-matrix scaling 2^-s with s = ceil(log2(|a|_1 / theta13))
    smax = 0
    for l in range(nb):
        nrm = 0.0
        for j in range(6):
            cs = 0.0
            for i in range(5):
                cs += abs(a[b0 + l, i, j])
            if cs > nrm:
                nrm = cs
        s = 0
        if nrm > _THETA and nrm < np.inf:
            s = int(math.ceil(math.log2(nrm / _THETA)))
            if s < 0:
                s = 0
        sv[l] = s
        sc[l] = math.ldexp(1.0, -s)
        if s > smax:
            smax = s
        for i in range(5):
            for j in range(6):
                x[i, j, l] = a[b0 + l, i, j] * sc[l]
    # ---- Pade [13/13]
    x2 = np.empty(shp)
    x4 = np.empty(shp)
    x6 = np.empty(shp)
    _mm(x, x, 0.0, x2)
    _mm(x2, x2, 0.0, x4)
    _mm(x4, x2, 0.0, x6)
    w1 = np.empty(shp)
    z1 = np.empty(shp)
    w = np.empty(shp)
    v = np.empty(shp)
    for i in range(5):
        for j in range(6):
            for l in range(BLOCK):
                w1[i, j, l] = _B13 * x6[i, j, l] + _B11 * x4[i, j, l] + _B9 * x2[i, j, l]
                z1[i, j, l] = _B12 * x6[i, j, l] + _B10 * x4[i, j, l] + _B8 * x2[i, j, l]
    _mm(x6, w1, 0.0, w)
    _mm(x6, z1, 0.0, v)
    for i in range(5):
        for j in range(6):
            for l in range(BLOCK):
                w[i, j, l] += _B7 * x6[i, j, l] + _B5 * x4[i, j, l] + _B3 * x2[i, j, l]
                v[i, j, l] += _B6 * x6[i, j, l] + _B4 * x4[i, j, l] + _B2 * x2[i, j, l]
        for l in range(BLOCK):
            w[i, i, l] += _B1
            v[i, i, l] += _B0
    # w, v: row 5 = b1 e6, b0 e6
    u = np.empty(shp)
    _mm(x, w, _B1, u)
    # V - U = [[M5, c], [0, b0]];  (V + U)[5] = b0 e6  ->  r[5] = e6,  r[0:5] = M5^{-1} (Y - c e6^T)
    vmu = np.empty(shp)
    r = np.empty(shp)
    for i in range(5):
        for j in range(6):
            for l in range(BLOCK):
                vmu[i, j, l] = v[i, j, l] - u[i, j, l]
                r[i, j, l] = v[i, j, l] + u[i, j, l]
        for l in range(BLOCK):
            r[i, 5, l] -= vmu[i, 5, l]
    lu = np.empty((5, 5, BLOCK))
    piv = np.empty((5, BLOCK), dtype=np.int64)
    dinv = np.empty((5, BLOCK))
    _lu5(vmu, lu, piv, dinv)
    _solve5(lu, piv, dinv, r)
    return x, x2, x4, x6, w1, z1, w, r, lu, piv, dinv, sc, sv, smax


@njit(**_JIT)
def _square(r, sv, smax):
    """rp[j] = r^(2^j), j = 0..smax, masked per lane (lanes with s <= j keep their value)."""
    rp = np.empty((smax + 1, 5, 6, BLOCK))
    rp[0] = r
    tmp = np.empty((5, 6, BLOCK))
    for st in range(smax):
        _mm(rp[st], rp[st], 1.0, tmp)
        rp[st + 1] = rp[st]
        _select(sv, st, tmp, rp[st + 1])
    return rp


@njit(**_JIT)
def _store_exp(rs, r_out, b0, nb):
    """Write the exponentials of one block (lanes last, 5 x 6) as full 6 x 6 matrices, last row [0 .. 0 1]."""
    for l in range(nb):
        for i in range(5):
            for j in range(6):
                r_out[b0 + l, i, j] = rs[i, j, l]
        for j in range(5):
            r_out[b0 + l, 5, j] = 0.0
        r_out[b0 + l, 5, 5] = 1.0


@njit(parallel=True, **_JIT)
def _cached_kernel(a, r_out, xc, rc, luc, pivc, dinvc, sc_c, sv_c):
    """exp(a) and, per block, what :func:`crbnn.physics.pulse_cpu` needs for directional derivatives."""
    nmat = a.shape[0]
    nblk = (nmat + BLOCK - 1) // BLOCK
    for blk in prange(nblk):
        b0 = blk * BLOCK
        nb = min(BLOCK, nmat - b0)
        x, _x2, _x4, _x6, _w1, _z1, _w, r, lu, piv, dinv, sc, sv, smax = _pade_block(a, b0, nb)
        xc[blk] = x
        rc[blk] = r
        luc[blk] = lu
        pivc[blk] = piv
        dinvc[blk] = dinv
        sc_c[blk] = sc
        sv_c[blk] = sv
        rs = _square(r, sv, smax)[smax]
        _store_exp(rs, r_out, b0, nb)


@njit(parallel=True, **_JIT)
def _kernel(a, e, r_out, l_out):
    nmat = a.shape[0]
    k_dirs = e.shape[2]
    nblk = (nmat + BLOCK - 1) // BLOCK
    for blk in prange(nblk):
        b0 = blk * BLOCK
        nb = min(BLOCK, nmat - b0)
        shp = (5, 6, BLOCK)
        x, x2, x4, x6, w1, z1, w, r, lu, piv, dinv, sc, sv, smax = _pade_block(a, b0, nb)
        tmp = np.empty(shp)
        rp = _square(r, sv, smax)
        rs = rp[smax]
        _store_exp(rs, r_out, b0, nb)
        if k_dirs == 0:
            continue
        # ---- Frechet derivatives, one direction at a time
        ek = np.zeros(shp)
        m2 = np.empty(shp)
        m4 = np.empty(shp)
        m6 = np.empty(shp)
        lw1 = np.empty(shp)
        lw2 = np.empty(shp)
        lz1 = np.empty(shp)
        lz2 = np.empty(shp)
        lw = np.empty(shp)
        lud = np.empty(shp)
        lvd = np.empty(shp)
        big = np.empty(shp)
        for k in range(k_dirs):
            for l in range(nb):
                for i in range(5):
                    for j in range(6):
                        ek[i, j, l] = e[b0 + l, i, k, j] * sc[l]
            _mm2(x, ek, 0.0, ek, x, 0.0, m2)
            _mm2(x2, m2, 0.0, m2, x2, 0.0, m4)
            _mm2(x4, m2, 0.0, m4, x2, 0.0, m6)
            for i in range(5):
                for j in range(6):
                    for l in range(BLOCK):
                        lw1[i, j, l] = _B13 * m6[i, j, l] + _B11 * m4[i, j, l] + _B9 * m2[i, j, l]
                        lw2[i, j, l] = _B7 * m6[i, j, l] + _B5 * m4[i, j, l] + _B3 * m2[i, j, l]
                        lz1[i, j, l] = _B12 * m6[i, j, l] + _B10 * m4[i, j, l] + _B8 * m2[i, j, l]
                        lz2[i, j, l] = _B6 * m6[i, j, l] + _B4 * m4[i, j, l] + _B2 * m2[i, j, l]
            _mm2(x6, lw1, 0.0, m6, w1, 0.0, lw)
            _mm2(x6, lz1, 0.0, m6, z1, 0.0, lvd)
            for i in range(5):
                for j in range(6):
                    for l in range(BLOCK):
                        lw[i, j, l] += lw2[i, j, l]
                        lvd[i, j, l] += lz2[i, j, l]
            _mm2(x, lw, 0.0, ek, w, _B1, lud)
            # rhs = lu + lv + (lu - lv) r ; row 5 of every term is 0
            for i in range(5):
                for j in range(6):
                    for l in range(BLOCK):
                        lw1[i, j, l] = lud[i, j, l] - lvd[i, j, l]
            _mm(lw1, r, 1.0, big)
            for i in range(5):
                for j in range(6):
                    for l in range(BLOCK):
                        big[i, j, l] += lud[i, j, l] + lvd[i, j, l]
            _solve5(lu, piv, dinv, big)
            # squaring: L <- R L + L R, R <- R^2 (R = rp[st])
            for st in range(smax):
                _mm2(rp[st], big, 0.0, big, rp[st], 1.0, tmp)
                _select(sv, st, tmp, big)
            for l in range(nb):
                for i in range(5):
                    for j in range(6):
                        l_out[b0 + l, i, k, j] = big[i, j, l]
                for j in range(6):
                    l_out[b0 + l, 5, k, j] = 0.0


def _supported(a: torch.Tensor, e: torch.Tensor | None) -> bool:
    if a.device.type != "cpu" or a.dtype != torch.float64 or a.ndim != 3 or tuple(a.shape[1:]) != (6, 6):
        return False
    if e is not None and (
        e.device.type != "cpu" or e.dtype != torch.float64 or e.ndim != 4 or e.shape[0] != a.shape[0]
        or e.shape[1] != 6 or e.shape[3] != 6
    ):
        return False
    if bool(a[:, 5, :].any()):
        return False
    if e is not None and bool(e[:, 5].any()):
        return False
    return True


def expm_frechet_cpu(a: torch.Tensor, e: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """exp(a) and the Frechet derivatives L(a, e_k), as :func:`crbnn.physics.expm.expm_frechet_torch`, on the CPU.

    ``a``: [B, 6, 6] float64 CPU tensor whose last row is zero; ``e``: [B, 6, K, 6] with zero
    last row (``e[:, 5] == 0``) or ``None``.  Returns ``(expm(a) [B, 6, 6], L [B, 6, K, 6] or
    None)``, new float64 CPU tensors.  Other inputs are handed to :func:`crbnn.physics.expm.expm_frechet_torch`.
    Runs on ``torch.get_num_threads()`` numba threads (at most numba's maximum).

    >>> a = torch.zeros(1, 6, 6, dtype=torch.float64); a[0, 0, 5] = 1.0; a[0, 0, 0] = -1.0
    >>> r, _ = expm_frechet_cpu(a)
    >>> round(float(r[0, 0, 5]), 12) == round(1 - math.exp(-1), 12)
    True
    """
    if not _supported(a, e):
        return expm_frechet_torch(a, e)
    an = np.ascontiguousarray(a.detach().numpy())
    bsz = an.shape[0]
    if e is None or e.shape[2] == 0:
        en = np.zeros((bsz, 6, 0, 6))
    else:
        en = np.ascontiguousarray(e.detach().numpy())
    k = en.shape[2]
    r_out = np.empty((bsz, 6, 6))
    l_out = np.empty((bsz, 6, k, 6))
    if bsz:
        numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
        _kernel(an, en, r_out, l_out)
    r = torch.from_numpy(r_out)
    if e is None:
        return r, None
    return r, torch.from_numpy(l_out)


class PadeCache(NamedTuple):
    """Per block of ``BLOCK`` matrices (lane last): what a directional derivative of exp(a) needs.

    ``x`` [nblk, 5, 6, BLOCK] the scaled generators a 2^-s (rows 0-4), ``r`` the Pade approximant
    r(x) at the scaled level, ``lu``/``piv``/``dinv`` the LU factors of M5 = q(x)[0:5, 0:5],
    ``sc`` [nblk, BLOCK] the scales 2^-s and ``s`` the squaring counts (lanes past the end: s = 0).
    """

    x: np.ndarray
    r: np.ndarray
    lu: np.ndarray
    piv: np.ndarray
    dinv: np.ndarray
    sc: np.ndarray
    s: np.ndarray


def expm_cached_cpu(a: torch.Tensor) -> tuple[torch.Tensor, PadeCache]:
    """exp(a) [B, 6, 6] of affine generators (last row zero, float64, CPU) and the :class:`PadeCache`.

    The same algorithm and numbers as :func:`expm_frechet_cpu` without directions; the cache lets
    :func:`crbnn.physics.pulse_cpu.pulse_directional_cpu` apply the Frechet derivative to one vector per
    matrix without forming it.

    >>> a = torch.zeros(1, 6, 6, dtype=torch.float64); a[0, 0, 5] = 1.0; a[0, 0, 0] = -1.0
    >>> r, cache = expm_cached_cpu(a)
    >>> round(float(r[0, 0, 5]), 12) == round(1 - math.exp(-1), 12), cache.x.shape
    (True, (1, 5, 6, 64))
    """
    if not _supported(a, None):
        raise ValueError("expm_cached_cpu: a must be a float64 CPU tensor [B, 6, 6] with zero last row")
    an = np.ascontiguousarray(a.detach().numpy())
    bsz = an.shape[0]
    nblk = (bsz + BLOCK - 1) // BLOCK
    r_out = np.empty((bsz, 6, 6))
    cache = PadeCache(
        np.empty((nblk, 5, 6, BLOCK)), np.empty((nblk, 5, 6, BLOCK)), np.empty((nblk, 5, 5, BLOCK)),
        np.empty((nblk, 5, BLOCK), dtype=np.int64), np.empty((nblk, 5, BLOCK)), np.empty((nblk, BLOCK)),
        np.empty((nblk, BLOCK), dtype=np.int64),
    )
    if bsz:
        numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
        _cached_kernel(an, r_out, *cache)
    return torch.from_numpy(r_out), cache
