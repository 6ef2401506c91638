"""Cramer-Rao bound against closed forms."""

import numpy as np
import torch

from crbnn.physics.crb import crb


def test_linear_gaussian_real():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 4)) * np.array([1.0, 1e3, 1e-4, 5.0])
    sigma = 0.3
    expected = np.diag(np.linalg.inv(a.T @ a)) * sigma**2
    got = crb(a.astype(np.complex128), sigma)
    assert np.allclose(got, expected, rtol=1e-10)


def test_linear_gaussian_complex_counts_real_and_imaginary():
    rng = np.random.default_rng(1)
    j = rng.normal(size=(15, 3)) + 1j * rng.normal(size=(15, 3))
    stacked = np.concatenate([j.real, j.imag])  # 30 real measurements
    expected = np.diag(np.linalg.inv(stacked.T @ stacked)) * 0.01**2
    assert np.allclose(crb(torch.as_tensor(j), 0.01).numpy(), expected, rtol=1e-10)


def test_singular_fisher_is_infinite():
    j = np.array([[1.0, 2.0], [2.0, 4.0]], dtype=np.complex128)
    assert np.isinf(crb(j)).all()
