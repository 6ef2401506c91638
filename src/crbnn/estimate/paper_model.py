"""The paper's model for the NLLS fits: g(theta) = u^H s(theta) at M0 = 1 with its exact Jacobian."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike

from crbnn.common.parameters import TISSUE_PARAMETERS

#: Default fitted parameters: all tissue parameters of the paper's model (complex M0 is projected out).
FIT_PARAMETERS: tuple[str, ...] = TISSUE_PARAMETERS


class PaperModel:
    """g(theta) = u^H s(theta) of the paper's model at M0 = 1, with the exact Jacobian J_c = u^H J_s.

    ``fit`` names the fitted tissue parameters (columns of theta, from ``FIT_PARAMETERS``);
    ``fixed`` gives values (SI units) for the tissue parameters not fitted.  ``max_batch`` bounds the
    number of signals per physics call (memory).

    ``sequence`` is a ``crbnn.data.sequence.Sequence`` (alpha [N] rad, trf [N] s, tr s), ``basis_u`` [N, R].
    """

    def __init__(
        self,
        sequence: Any,
        basis_u: ArrayLike,
        fit: Sequence[str] = FIT_PARAMETERS,
        fixed: Mapping[str, float] | None = None,
        r2sl: Any = None,
        max_batch: int = 1024,
        device: str | torch.device = "cpu",
    ) -> None:
        fixed = dict(fixed or {})
        unknown = [p for p in fit if p not in FIT_PARAMETERS]
        missing = [p for p in FIT_PARAMETERS if p not in fit and p not in fixed]
        if unknown or missing:
            raise ValueError(f"PaperModel: unknown fitted parameters {unknown}, no value for {missing}")
        self.fit = tuple(fit)
        self.fixed = {p: float(fixed[p]) for p in FIT_PARAMETERS if p not in fit}
        self.device = torch.device(device)
        self.alpha = torch.as_tensor(np.asarray(sequence.alpha, dtype=np.float64)).to(self.device)
        self.trf = torch.as_tensor(np.asarray(sequence.trf, dtype=np.float64)).to(self.device)
        self.tr = float(sequence.tr)
        self.u = torch.as_tensor(np.asarray(basis_u, dtype=np.complex128)).to(self.device)
        self.r2sl = r2sl
        self.max_batch = int(max_batch)
        self.n_signals = 0  # simulated signals (for timing reports)

    def params(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Physics parameter dict (M0 = 1) from theta [B, P]."""
        B = theta.shape[0]
        p: dict[str, torch.Tensor] = {"M0": torch.ones(B, dtype=torch.complex128, device=theta.device)}
        for j, name in enumerate(self.fit):
            p[name] = theta[:, j]
        for name, v in self.fixed.items():
            p[name] = torch.full((B,), v, dtype=torch.float64, device=theta.device)
        return p

    def __call__(self, theta: torch.Tensor, jacobian: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        from crbnn.data.basis import compress_jacobian
        from crbnn.physics.signal import simulate_paper

        theta = torch.as_tensor(theta, dtype=torch.float64).to(self.device)
        gs, dgs = [], []
        for s in range(0, theta.shape[0], self.max_batch):
            th = theta[s:s + self.max_batch]
            sig, jac = simulate_paper(self.alpha, self.trf, self.tr, self.params(th),
                                      wrt=self.fit if jacobian else (), r2sl=self.r2sl)
            uh = self.u.conj()
            gs.append(sig.to(torch.complex128) @ uh)
            if jacobian:
                dgs.append(compress_jacobian(jac.to(torch.complex128), self.u))
            self.n_signals += th.shape[0]
        g = torch.cat(gs)
        return g, (torch.cat(dgs) if jacobian else None)
