"""Simulated, CRB-annotated data sets: subspace coefficients, their Jacobian and the CRBs.

Streams a parameter table through :func:`crbnn.physics.signal.simulate_paper` in batches (memory stays
flat in the number of signals), compresses with the subspace basis (c = U^H s) and computes the
Cramer-Rao bounds of the estimated parameters with the nuisance parameters in the Fisher matrix
(the other tissue parameters are known: crbnn.config.regime), at M0 = 1 and sigma = 1 (scale by
sigma^2 / |M0|^2 at use).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import torch

from crbnn.common.device import resolve_device
from crbnn.common.parameters import PAPER_ESTIMATED, PAPER_NUISANCE, PAPER_PARAMETERS, TISSUE_PARAMETERS
from crbnn.data.basis import compress, compress_jacobian
from crbnn.physics.crb import crb as crb_diag
from crbnn.physics.r2sl import R2slTable
from crbnn.physics.signal import simulate_paper

log = logging.getLogger(__name__)


def table_to_params(table: np.ndarray | torch.Tensor, device: torch.device, m0: complex = 1.0) -> dict[str, torch.Tensor]:
    """Parameter table [n, 7] (columns TISSUE_PARAMETERS) -> ``simulate_paper`` params dict."""
    t = torch.as_tensor(np.asarray(table), dtype=torch.float64, device=device)
    if t.ndim != 2 or t.shape[1] != len(TISSUE_PARAMETERS):
        raise ValueError(f"parameter table must be [n, {len(TISSUE_PARAMETERS)}] with columns {TISSUE_PARAMETERS}, got {tuple(t.shape)}")
    params: dict[str, torch.Tensor] = {nm: t[:, i] for i, nm in enumerate(TISSUE_PARAMETERS)}
    params["M0"] = torch.full((t.shape[0],), m0, dtype=torch.complex128, device=device)
    return params


def simulate_coefficients(
    alpha: np.ndarray,
    trf: np.ndarray,
    tr: float,
    u: np.ndarray,
    table: np.ndarray,
    estimated: Sequence[str] = PAPER_ESTIMATED,
    nuisance: Sequence[str] = PAPER_NUISANCE,
    r2sl: R2slTable | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    with_jacobian: bool = True,
) -> dict[str, np.ndarray]:
    """Coefficients, Jacobian and CRBs of every row of a parameter table.

    ``alpha`` (rad), ``trf`` (s), ``tr`` (s): the pulse train; ``u`` [N, R] the basis;
    ``table`` [n, 7] tissue parameters (columns :data:`TISSUE_PARAMETERS`).  Returns a dict with
    ``coefficients`` [n, R] complex128, and with ``with_jacobian``: ``jacobian`` [n, R, P]
    complex128 (columns ``estimated + nuisance``, paper parametrization) and ``crb`` [n, E]
    float64 of the estimated parameters, all at M0 = 1 and sigma = 1.
    """
    names = tuple(estimated) + tuple(nuisance)
    for nm in names:
        if nm not in PAPER_PARAMETERS:
            raise ValueError(f"unknown parameter {nm!r} in estimated/nuisance; choose from {PAPER_PARAMETERS}")
    if len(set(names)) != len(names):
        raise ValueError(f"estimated and nuisance parameters overlap or repeat: {names}")
    device = resolve_device(device) if isinstance(device, str) else device
    table = np.asarray(table, dtype=np.float64)
    n = table.shape[0]
    if u.shape[0] != len(alpha):
        raise ValueError(f"basis has {u.shape[0]} rows but the pulse train has {len(alpha)} pulses")
    u_t = torch.as_tensor(np.asarray(u), dtype=torch.complex128, device=device)
    a_t = torch.as_tensor(alpha, dtype=torch.float64, device=device)
    t_t = torch.as_tensor(trf, dtype=torch.float64, device=device)
    rank = u_t.shape[1]
    coef = np.empty((n, rank), dtype=np.complex128)
    jac = np.empty((n, rank, len(names)), dtype=np.complex128) if with_jacobian else None
    crbs = np.empty((n, len(estimated)), dtype=np.float64) if with_jacobian else None
    t0 = time.perf_counter()
    last = t0
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        params = table_to_params(table[start:stop], device)
        s, j = simulate_paper(a_t, t_t, tr, params, wrt=names if with_jacobian else (), r2sl=r2sl)
        coef[start:stop] = compress(s, u_t).cpu().numpy()
        if with_jacobian:
            jc = compress_jacobian(j, u_t)
            jac[start:stop] = jc.cpu().numpy()
            crbs[start:stop] = crb_diag(jc, 1.0)[..., : len(estimated)].cpu().numpy()
        now = time.perf_counter()
        if now - last > 10 or stop == n:
            rate = stop / (now - t0)
            log.info("simulated %d/%d signals (%.1f signals/s, ETA %.0f s)", stop, n, rate, (n - stop) / rate)
            last = now
    out = {"coefficients": coef}
    if with_jacobian:
        out["jacobian"] = jac
        out["crb"] = crbs
    return out
