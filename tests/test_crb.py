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


def test_crb_at_complex_m0_equals_inverse_fisher_of_the_jacobian(sequence):
    """The pipeline's CRB (simulated at M0 = 1, sigma = 1, then scaled by sigma^2/|M0|^2) equals the
    inverse of the Fisher matrix built by hand from the Jacobian of the signal at a complex M0 != 1,
    projected onto a basis, with complex M0, omega0 and B1 as nuisance parameters."""
    from crbnn.data.simulate import simulate_coefficients
    from crbnn.physics.noise import crb_scale
    from crbnn.physics.signal import simulate_paper

    alpha, trf = sequence
    tr = 3.5e-3
    rng = np.random.default_rng(11)
    u, _ = np.linalg.qr(rng.normal(size=(len(alpha), 8)) + 1j * rng.normal(size=(len(alpha), 8)))
    tissue = dict(m0s=0.12, T1=1.1, T2f=0.07, Rex=13.6, T2s=12.5e-6, omega0=40.0, B1=0.95)
    table = np.array([[tissue[k] for k in ("m0s", "T1", "T2f", "Rex", "T2s", "omega0", "B1")]])
    estimated, nuisance = ("m0s", "T1", "T2f"), ("M0_re", "M0_im", "omega0", "B1")
    pipeline = simulate_coefficients(alpha, trf, tr, u, table, estimated, nuisance)["crb"][0]
    m0, sigma = 0.3 - 0.4j, 0.01
    _, jac = simulate_paper(alpha, trf, tr, dict(M0=m0, **tissue), wrt=estimated + nuisance)
    jc = u.conj().T @ jac.numpy()  # [R, P]: d(u^H s)/d theta
    fisher = (jc.conj().T @ jc).real / sigma**2
    expected = np.diag(np.linalg.inv(fisher))[:3]
    assert np.allclose(pipeline * crb_scale(sigma, m0), expected, rtol=1e-7)
    assert np.allclose(crb(jc, sigma)[:3], expected, rtol=1e-9)
