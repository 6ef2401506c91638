"""Batched matrix exponential with Frechet derivatives in many directions at once.

Scaling and squaring with the [13/13] Pade approximant (Higham 2005) and its Frechet derivative
(Al-Mohy & Higham 2009, "Computing the Frechet derivative of the matrix exponential", Alg. 6.4),
written for stacks of small matrices in PyTorch so that the same code runs on CPU and GPU.

Directions are stored in the layout ``[B, n, K, n]`` (row, direction, column): left products
``X @ E_k`` are then one ``[n, n] @ [n, K n]`` product and right products ``E_k @ X`` one
``[K n, n] @ [n, n]`` product per batch element, with no copies, so that the K directions share
the work of the exponential (the coefficients of the Pade approximant and one LU factorization).
"""

from __future__ import annotations

import math

import torch

# Pade [13/13] coefficients and the 1-norm bound for which it is accurate to unit roundoff.
_B13 = (
    64764752532480000.0,
    32382376266240000.0,
    7771770303897600.0,
    1187353796428800.0,
    129060195264000.0,
    10559470521600.0,
    670442572800.0,
    33522128640.0,
    1323241920.0,
    40840800.0,
    960960.0,
    16380.0,
    182.0,
    1.0,
)
THETA13 = 5.371920351148152


def _lmul(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """x_b @ m_{b,k} for all k; x [B, n, n], m [B, n, K, n]."""
    b, n, k, _ = m.shape
    return (x @ m.reshape(b, n, k * n)).reshape(b, n, k, n)


def _rmul(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """m_{b,k} @ x_b for all k; m [B, n, K, n], x [B, n, n]."""
    b, n, k, _ = m.shape
    return (m.reshape(b, n * k, n) @ x).reshape(b, n, k, n)


def expm_frechet_torch(
    a: torch.Tensor, e: torch.Tensor | None = None, chunk: int | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """exp(a) and the Frechet derivatives L(a, e_k) for a stack of matrices.

    ``a``: [B, n, n] real or complex; ``e``: [B, n, K, n] (direction k is ``e[:, :, k, :]``) or
    ``None``.  Returns ``(expm(a) [B, n, n], L [B, n, K, n] or None)`` where
    L(a, e_k) = d/dh expm(a + h e_k) at h = 0.

    >>> a = torch.tensor([[[0.0, 1.0], [-1.0, 0.0]]], dtype=torch.float64)
    >>> r, _ = expm_frechet_torch(a)
    >>> torch.allclose(r[0], torch.tensor([[math.cos(1), math.sin(1)], [-math.sin(1), math.cos(1)]], dtype=torch.float64))
    True
    """
    if chunk is None:
        # cache-sized blocks on the CPU; one block on a GPU
        chunk = 256 if a.device.type == "cpu" else 1 << 20
    if a.shape[0] > chunk:
        parts = [
            _expm_frechet_block(a[i : i + chunk], None if e is None else e[i : i + chunk])
            for i in range(0, a.shape[0], chunk)
        ]
        r = torch.cat([pt[0] for pt in parts])
        return r, (None if e is None else torch.cat([pt[1] for pt in parts]))
    return _expm_frechet_block(a, e)


def _expm_frechet_block(a: torch.Tensor, e: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    if a.ndim != 3 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"expm_frechet_torch: expected a stack of square matrices [B, n, n], got {tuple(a.shape)}")
    bsz, n, _ = a.shape
    if bsz == 0:
        return a.clone(), None if e is None else e.clone()
    norm = float(a.abs().sum(-2).amax()) if a.numel() else 0.0
    s = max(0, math.ceil(math.log2(norm / THETA13))) if norm > THETA13 else 0
    scale = 2.0**-s
    a = a * scale
    eye = torch.eye(n, dtype=a.dtype, device=a.device).expand(bsz, n, n)
    b = _B13
    a2 = a @ a
    a4 = a2 @ a2
    a6 = a4 @ a2
    w1 = b[13] * a6 + b[11] * a4 + b[9] * a2
    w2 = b[7] * a6 + b[5] * a4 + b[3] * a2 + b[1] * eye
    z1 = b[12] * a6 + b[10] * a4 + b[8] * a2
    z2 = b[6] * a6 + b[4] * a4 + b[2] * a2 + b[0] * eye
    w = a6 @ w1 + w2
    u = a @ w
    v = a6 @ z1 + z2
    lu, piv = torch.linalg.lu_factor(v - u)
    r = torch.linalg.lu_solve(lu, piv, v + u)
    if e is None or e.shape[2] == 0:
        for _ in range(s):
            r = r @ r
        return r, (None if e is None else e.clone())
    e = e * scale
    k = e.shape[2]
    m2 = _lmul(a, e) + _rmul(e, a)
    m4 = _lmul(a2, m2) + _rmul(m2, a2)
    m6 = _lmul(a4, m2) + _rmul(m4, a2)
    lw1 = b[13] * m6 + b[11] * m4 + b[9] * m2
    lw2 = b[7] * m6 + b[5] * m4 + b[3] * m2
    lz1 = b[12] * m6 + b[10] * m4 + b[8] * m2
    lz2 = b[6] * m6 + b[4] * m4 + b[2] * m2
    lw = _lmul(a6, lw1) + _rmul(m6, w1) + lw2
    lu_ = _lmul(a, lw) + _rmul(e, w)
    lv = _lmul(a6, lz1) + _rmul(m6, z1) + lz2
    rhs = lu_ + lv + _rmul(lu_ - lv, r)
    big = torch.linalg.lu_solve(lu, piv, rhs.reshape(bsz, n, k * n)).reshape(bsz, n, k, n)
    for _ in range(s):
        big = _lmul(r, big) + _rmul(big, r)
        r = r @ r
    return r, big
