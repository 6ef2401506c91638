"""Losses: closed-form values and the linear Gaussian efficiency check (CRB-normalized loss = 1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crbnn.learn.losses import bias_reduced_loss, compute_loss, crb_loss, crb_normalized_errors, mse_loss

torch.set_num_threads(1)


def test_mse_and_crb_closed_form() -> None:
    est = torch.tensor([[1.0, 2.0], [0.0, -2.0]])
    true = torch.zeros(2, 2)
    crb = torch.tensor([[1.0, 4.0], [2.0, 2.0]])
    assert float(mse_loss(est, true)) == pytest.approx((1 + 4 + 0 + 4) / 4)
    assert float(crb_loss(est, true, crb)) == pytest.approx((1 + 1 + 0 + 2) / 4)
    assert float(compute_loss("crb", est, true, crb)) == float(crb_loss(est, true, crb))
    with pytest.raises(ValueError, match="unknown loss"):
        compute_loss("l1", est, true, crb)


def test_bias_reduced_terms() -> None:
    true = torch.zeros(1, 1)
    crb = torch.ones(1, 1)
    # unbiased, variance 0.5 < delta: no penalty at all
    est = torch.tensor([[[0.5], [-0.5]]])
    assert float(bias_reduced_loss(est, true, crb)) == pytest.approx(0.0)
    # bias 1, variance 2: 1 + lam * (2 - delta)
    est = torch.tensor([[[0.0], [2.0]]])
    assert float(bias_reduced_loss(est, true, crb, lam=3.0, delta=1.0)) == pytest.approx(1 + 3 * 1)
    with pytest.raises(ValueError, match="K>=2"):
        bias_reduced_loss(torch.zeros(2, 1), true, crb)


def test_linear_gaussian_least_squares_is_efficient() -> None:
    """y = A theta + n, n ~ N(0, sigma^2 I): least squares is efficient, CRB = sigma^2 diag((A^T A)^-1).

    The CRB-normalized squared errors of each parameter are chi^2_1 distributed (mean 1, variance 2),
    so the crb loss code must give 1 within a few standard errors sqrt(2 / n).
    """
    rng = np.random.default_rng(20240611)
    n, m, p, sigma = 20000, 12, 3, 0.05
    a = rng.normal(size=(m, p))
    theta = rng.uniform(0.5, 2.0, size=(n, p))
    y = theta @ a.T + sigma * rng.normal(size=(n, m))
    est = np.linalg.solve(a.T @ a, a.T @ y.T).T
    crb = np.tile(sigma**2 * np.diag(np.linalg.inv(a.T @ a)), (n, 1))
    per_param = crb_normalized_errors(torch.from_numpy(est), torch.from_numpy(theta), torch.from_numpy(crb)).mean(0)
    se = np.sqrt(2 / n)
    assert np.all(np.abs(per_param.numpy() - 1) < 4 * se), per_param
    total = float(crb_loss(torch.from_numpy(est), torch.from_numpy(theta), torch.from_numpy(crb)))
    assert abs(total - 1) < 4 * se
    # a biased (shrunk) estimator is worse in the MSE-sense here and the loss sees it
    shrunk = 0.9 * est
    assert float(crb_loss(torch.from_numpy(shrunk), torch.from_numpy(theta), torch.from_numpy(crb))) > 1.5
