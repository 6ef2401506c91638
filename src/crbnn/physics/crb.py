"""Cramer-Rao bounds from Jacobians (docs/physics.md section 7).

White complex Gaussian noise of standard deviation sigma on each real and imaginary part gives
the Fisher information F = Re(J^H J) / sigma^2 of the real parameters; the Cramer-Rao bound of
parameter k is (F^-1)_kk.  F spans many orders of magnitude (m0s ~ 0.1, omega0 ~ 100 rad/s,
T2s ~ 1e-5 s), so it is inverted after symmetric diagonal scaling, in float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def fisher(jacobian: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Fisher information Re(J^H J) / sigma^2, [..., P, P] float64, of a complex J [..., M, P]."""
    j = jacobian
    if not j.is_complex():
        j = j.to(torch.float64)
        return (j.transpose(-1, -2) @ j) / sigma**2
    j = j.to(torch.complex128)
    return (j.conj().transpose(-1, -2) @ j).real / sigma**2


def crb(jacobian: torch.Tensor | np.ndarray, sigma: float = 1.0, indices: Sequence[int] | None = None):
    """Diagonal of F^-1 with F = Re(J^H J) / sigma^2: the CRB of every column of J.

    ``jacobian``: complex (or real) [..., M, P], M measurements, P parameters (all parameters
    unknown to the estimator, estimated and nuisance).  Returns float64 [..., P] (or the
    ``indices`` columns), a NumPy array for NumPy input.  Singular F gives ``inf``.

    >>> j = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]], dtype=torch.complex128)
    >>> crb(j, sigma=0.5).tolist()
    [0.25, 0.0625]
    """
    is_numpy = isinstance(jacobian, np.ndarray)
    j = torch.as_tensor(jacobian)
    if sigma <= 0:
        raise ValueError(f"crb: sigma must be > 0, got {sigma}")
    f = fisher(j, 1.0)
    d = torch.diagonal(f, dim1=-2, dim2=-1)
    ok = d > 0
    scale = torch.where(ok, d, torch.ones_like(d)).rsqrt()
    fs = f * scale[..., :, None] * scale[..., None, :]
    eye = torch.eye(f.shape[-1], dtype=f.dtype, device=f.device)
    fs = torch.where(ok[..., :, None] & ok[..., None, :], fs, eye.expand_as(fs))
    _, info = torch.linalg.cholesky_ex(fs)
    failed = (info != 0)[..., None, None]
    chol = torch.linalg.cholesky(torch.where(failed, eye.expand_as(fs), fs))
    inv = torch.cholesky_inverse(chol)
    out = torch.diagonal(inv, dim1=-2, dim2=-1) * scale**2 * sigma**2
    bad = (info != 0)[..., None] | ~ok.all(-1, keepdim=True)
    out = torch.where(bad.expand_as(out), torch.full_like(out, float("inf")), out)
    if indices is not None:
        out = out[..., list(indices)]
    return out.numpy() if is_numpy else out
