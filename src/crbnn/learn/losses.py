"""Training losses and CRB-normalized error metrics.

All tensors hold estimated parameters in physical units (``m0s`` in 1, ``T1``, ``T2f`` in s) with the
parameter axis last; ``crb`` is the Cramér-Rao bound (variance, units squared) of each sample and
parameter at the sample's true parameters, M0 and noise level.

* ``mse``: mean over samples and parameters of ``(est - true)^2`` (physical units, the paper's
  baseline: T1 in s dominates it).
* ``crb``: mean over samples and parameters of ``(est - true)^2 / CRB(true)`` (Zhang et al. 2022).
  An efficient unbiased estimator has expectation 1.
* ``bias_reduced`` (Mao, Flassbeck, Assländer, arXiv 2312.11468): with ``K`` noise realizations of
  each signal, ``(mean_k est - true)^2 / CRB + lam * max(var_k(est) / CRB - delta, 0)``, averaged over
  signals and parameters; ``var_k`` is the unbiased sample variance over the ``K`` realizations.

Example:
    >>> est, true, crb = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 4.0]])
    >>> float(crb_loss(est, true, crb)), float(mse_loss(est, true))
    (1.0, 2.5)
"""

from __future__ import annotations

import torch

LOSSES = ("mse", "crb", "bias_reduced")


def mse_loss(est: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean squared error in physical units over all samples and parameters (scalar)."""
    return torch.mean((est - true) ** 2)


def crb_normalized_errors(est: torch.Tensor, true: torch.Tensor, crb: torch.Tensor) -> torch.Tensor:
    """Per-sample, per-parameter ``(est - true)^2 / crb`` (dimensionless, shape of ``est``)."""
    return (est - true) ** 2 / crb


def crb_loss(est: torch.Tensor, true: torch.Tensor, crb: torch.Tensor) -> torch.Tensor:
    """CRB-normalized loss: mean of ``(est - true)^2 / crb`` over samples and parameters (scalar)."""
    return torch.mean(crb_normalized_errors(est, true, crb))


def bias_reduced_loss(
    est: torch.Tensor, true: torch.Tensor, crb: torch.Tensor, lam: float = 1.0, delta: float = 1.0
) -> torch.Tensor:
    """Bias-reduced loss of Mao et al. (scalar).

    Args:
        est: ``[n, K, E]`` estimates of ``K >= 2`` noise realizations of each of ``n`` signals.
        true: ``[n, E]`` true parameters.
        crb: ``[n, E]`` CRB of each signal (all K realizations share M0 and sigma, so one CRB).
        lam: weight of the variance penalty.
        delta: variance/CRB tolerated without penalty.

    Example:
        >>> est = torch.tensor([[[1.0], [3.0]]])  # mean 2, unbiased variance 2
        >>> float(bias_reduced_loss(est, torch.tensor([[1.0]]), torch.tensor([[1.0]])))
        2.0
    """
    if est.ndim != 3 or est.shape[1] < 2:
        raise ValueError(f"bias_reduced_loss needs est [n, K>=2, E], got {tuple(est.shape)}")
    mean = est.mean(dim=1)
    var = est.var(dim=1, unbiased=True)
    bias_term = (mean - true) ** 2 / crb
    var_term = torch.clamp(var / crb - delta, min=0.0)
    return torch.mean(bias_term + lam * var_term)


def compute_loss(
    name: str,
    est: torch.Tensor,
    true: torch.Tensor,
    crb: torch.Tensor,
    lam: float = 1.0,
    delta: float = 1.0,
) -> torch.Tensor:
    """Dispatch on a loss name from `LOSSES`.  For ``bias_reduced`` ``est`` is ``[n, K, E]``."""
    if name == "mse":
        return mse_loss(est, true)
    if name == "crb":
        return crb_loss(est, true, crb)
    if name == "bias_reduced":
        return bias_reduced_loss(est, true, crb, lam=lam, delta=delta)
    raise ValueError(f"unknown loss {name!r}; choose from {LOSSES}")
