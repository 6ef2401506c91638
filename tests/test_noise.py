"""One measurement model: every stage's noisy data is crbnn.physics.noise's draw_m0 + add_noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crbnn.evaluate.grid import noisy_coefficients
from crbnn.evaluate.test_set import noisy_test_set
from crbnn.learn.training_data import draw_noisy
from crbnn.physics.noise import add_noise, crb_scale, draw_m0, sigma_for_snr


def test_noise_has_the_stated_standard_deviation() -> None:
    rng = np.random.default_rng(1)
    n = add_noise(rng, np.zeros((200_000,), complex), 0.3)
    assert n.dtype == np.complex128
    assert n.real.std() == pytest.approx(0.3, rel=0.01) and n.imag.std() == pytest.approx(0.3, rel=0.01)
    assert abs(np.corrcoef(n.real, n.imag)[0, 1]) < 0.01


def test_torch_noise_follows_the_data_dtype() -> None:
    g = torch.Generator().manual_seed(0)
    y = add_noise(g, torch.zeros(1000, dtype=torch.complex64), 0.5)
    assert y.dtype == torch.complex64 and 0.45 < float(y.real.std()) < 0.55
    y64 = add_noise(torch.Generator().manual_seed(0), torch.zeros(3, dtype=torch.complex128), 0.5)
    assert y64.dtype == torch.complex128


def test_m0_magnitude_and_phase() -> None:
    rng = np.random.default_rng(2)
    m0 = draw_m0(rng, (5000,), (0.2, 0.9))
    assert np.abs(m0).min() >= 0.2 and np.abs(m0).max() <= 0.9
    assert np.angle(m0).std() > 1.5  # phases cover the circle
    fixed = draw_m0(np.random.default_rng(2), (4,), 0.7, random_phase=False)
    assert np.allclose(fixed, 0.7)
    t = draw_m0(torch.Generator().manual_seed(0), (100,), (0.5, 1.0))
    assert t.dtype == torch.complex64 and float(t.abs().min()) >= 0.5 - 1e-6


def test_phase_choice_leaves_the_noise_unchanged() -> None:
    c = np.ones((3, 4), complex)
    y1, m1 = noisy_coefficients(c, 2, 1.0, 0.1, seed=5, random_phase=True)
    y0, m0 = noisy_coefficients(c, 2, 1.0, 0.1, seed=5, random_phase=False)
    assert np.allclose(y1 - m1[..., None] * c[:, None, :], y0 - m0[..., None] * c[:, None, :])


def test_stages_draw_through_the_one_model() -> None:
    c = np.random.default_rng(0).standard_normal((6, 3)) + 0j
    # test set: |M0| from a range, one realization
    y, m0 = noisy_test_set(c, (0.1, 1.0), 0.05, seed=11)
    rng = np.random.default_rng(11)
    m0_ref = draw_m0(rng, (6,), (0.1, 1.0))
    assert np.array_equal(m0, m0_ref) and np.array_equal(y, add_noise(rng, m0_ref[:, None] * c, 0.05))
    # grids and SNR sweep: fixed |M0|, K realizations
    y, m0 = noisy_coefficients(c, 4, 0.8, 0.05, seed=12)
    rng = np.random.default_rng(12)
    m0_ref = draw_m0(rng, (6, 4), 0.8)
    assert np.array_equal(y, add_noise(rng, m0_ref[..., None] * c[:, None, :], 0.05))
    # training (torch, CPU generator)
    ct = torch.from_numpy(c.astype(np.complex64))
    y, m2 = draw_noisy(ct, torch.Generator().manual_seed(3), 0.05, (0.1, 1.0))
    g = torch.Generator().manual_seed(3)
    m0_t = draw_m0(g, (6,), (0.1, 1.0))
    assert torch.equal(y, add_noise(g, m0_t[:, None] * ct, 0.05)) and torch.allclose(m2, m0_t.abs() ** 2)


def test_snr_and_crb_scaling() -> None:
    assert sigma_for_snr(50.0, 2.0) == pytest.approx(0.04)
    assert crb_scale(0.04, 2.0) == pytest.approx(0.0004)
    with pytest.raises(ValueError, match="SNR must be > 0"):
        sigma_for_snr(0.0)
