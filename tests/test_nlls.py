"""Tests of the NLLS reference: the variable-projection LM on a cheap toy model, then the physics."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from crbnn.estimate import nlls

torch.set_num_threads(1)

T = torch.linspace(0.0, 3.0, 9, dtype=torch.float64)


def toy(theta: torch.Tensor, jacobian: bool = True):
    """g = exp(-a t) exp(i w t) + b exp(-2 t), theta = (a, w, b): a cheap non-linear 3-parameter model."""
    a, w, b = theta[:, 0:1], theta[:, 1:2], theta[:, 2:3]
    e1 = torch.exp(-a * T) * torch.exp(1j * w * T)
    e2 = torch.exp(-2.0 * T).to(torch.complex128) * torch.ones_like(a)
    g = e1 + b * e2
    if not jacobian:
        return g, None
    dg = torch.stack([-T * e1, 1j * T * e1, e2], dim=-1)
    return g, dg


LO, HI = np.array([0.1, -2.0, 0.0]), np.array([3.0, 2.0, 2.0])


def _truth(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(0.3, 2.0, n), rng.uniform(-1.0, 1.0, n), rng.uniform(0.2, 1.5, n)])


def test_projected_jacobian_matches_finite_differences():
    rng = np.random.default_rng(0)
    th = torch.as_tensor(_truth(4, 1))
    y = torch.as_tensor(rng.standard_normal((4, 9)) + 1j * rng.standard_normal((4, 9)))
    g, dg = toy(th)
    _, _, jac = nlls._projected(y, g, dg)
    h = 1e-6
    for p in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[p] = h
        gp, _ = toy(th + e, False)
        gm, _ = toy(th - e, False)
        _, ap, _ = nlls._projected(y, gp, None)
        _, am, _ = nlls._projected(y, gm, None)
        fd = (nlls._residual_real(y, gp, ap) - nlls._residual_real(y, gm, am)) / (2 * h)
        np.testing.assert_allclose(jac[:, :, p].numpy(), fd.numpy(), rtol=1e-6, atol=1e-8)


def test_noise_free_recovery_toy():
    truth = _truth(200, 2)
    rng = np.random.default_rng(3)
    m0 = rng.uniform(0.1, 2.0, 200) * np.exp(1j * rng.uniform(0, 2 * np.pi, 200))
    g, _ = toy(torch.as_tensor(truth), False)
    y = m0[:, None] * g.numpy()
    start = np.clip(truth * rng.uniform(0.7, 1.3, truth.shape), LO, HI)
    res = nlls.fit_varpro(toy, y, start, LO, HI, names=("a", "w", "b"), batch_size=64)
    assert res.converged.all()
    np.testing.assert_allclose(res.theta, truth, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(res.M0, m0, rtol=1e-5)
    assert res.time_per_voxel > 0


def test_bounds_respected():
    truth = np.array([[2.5, 0.5, 1.0]])
    g, _ = toy(torch.as_tensor(truth), False)
    hi = np.array([2.0, 2.0, 2.0])
    res = nlls.fit_varpro(toy, g.numpy(), [[1.0, 0.0, 0.5]], LO, hi)
    assert np.all(res.theta >= LO) and np.all(res.theta <= hi)
    assert res.theta[0, 0] == pytest.approx(2.0)


def test_noisy_fit_is_efficient_toy():
    """With small noise the NLLS spread matches the CRB (including complex M0 as two parameters)."""
    n, sigma = 3000, 0.01
    truth = np.tile([[1.0, 0.3, 0.8]], (n, 1))
    g, dg = toy(torch.as_tensor(truth[:1]))
    m0 = 0.7 * np.exp(0.4j)
    rng = np.random.default_rng(4)
    y = m0 * g.numpy() + sigma * (rng.standard_normal((n, 9)) + 1j * rng.standard_normal((n, 9)))
    res = nlls.fit_varpro(toy, y, truth, LO, HI, batch_size=1000)
    # Fisher matrix over (Re M0, Im M0, a, w, b)
    J = np.concatenate([g.numpy().T, 1j * g.numpy().T, m0 * dg.numpy()[0]], axis=1)
    crb = np.diag(np.linalg.inv(np.real(J.conj().T @ J) / sigma**2))[2:]
    ratio = res.theta.var(axis=0, ddof=1) / crb
    # variance of a sample variance ratio: 2/(n-1) -> 5 sigma ~ 0.13
    np.testing.assert_allclose(ratio, 1.0, atol=0.15)
    assert np.all(np.abs(res.theta.mean(axis=0) - truth[0]) <= 5 * np.sqrt(crb / n) + 1e-4)


def test_dictionary_start_picks_nearest_atom():
    truth = np.array([[0.9, 0.0, 0.5]])
    g, _ = toy(torch.as_tensor(truth), False)
    start = nlls.dictionary_start(toy, 3j * g.numpy(), {"a": [0.3, 1.0, 2.0]}, {"w": 0.0, "b": 0.5}, ("a", "w", "b"))
    assert start.tolist() == [[1.0, 0.0, 0.5]]


def test_noise_free_recovery_physics(tmp_path, data_dir):
    """The paper model: noise-free coefficients of two voxels are recovered to 1e-5 relative."""
    data = data_dir
    import scipy.io

    from crbnn.data.sequence import load_sequence

    seq = load_sequence(data / "control_MT_v3p2_TR3p5ms_discretized.mat", tr=3.5e-3)
    u = scipy.io.loadmat(data / "basis_for_compress.mat")["u"][:, :13].astype(np.complex128)
    names = nlls.FIT_PARAMETERS
    truth = np.array([[0.15, 1.1, 0.07, 15.0, 12e-6, 30.0, 0.95], [0.08, 1.6, 0.09, 20.0, 9e-6, -50.0, 1.05]])
    model = nlls.PaperModel(seq, u)
    g, _ = model(torch.as_tensor(truth), jacobian=False)
    m0 = np.array([0.5 * np.exp(0.3j), 1e-3 * np.exp(-2j)])
    y = m0[:, None] * g.numpy()
    bounds = {"m0s": (0.0, 0.4), "T1": (0.3, 3.0), "T2f": (0.01, 0.3), "Rex": (2.0, 40.0),
              "T2s": (6e-6, 20e-6), "omega0": (-800.0, 800.0), "B1": (0.65, 1.35)}
    start = {p: truth[:, j] * 1.1 for j, p in enumerate(names) if p != "omega0"}
    nominal = dict(zip(names, truth[0]))
    res = nlls.fit_nlls(y, seq, u, bounds=bounds, nominal=nominal, start=start, threads=1)
    assert res.converged.all(), res
    rel = np.abs(res.theta - truth) / np.maximum(np.abs(truth), np.abs(truth).max(axis=0) * 1e-3)
    assert rel.max() < 1e-5, (rel, res.iterations)
    np.testing.assert_allclose(res.M0, m0, rtol=1e-5)
    # the same fits in two worker processes (one voxel each) give the same answers
    par = nlls.fit_nlls(y, seq, u, bounds=bounds, nominal=nominal, start=start, threads=1, workers=2)
    np.testing.assert_allclose(par.theta, res.theta, rtol=1e-9)
