"""Tests of the NLLS reference: the variable-projection LM on a cheap toy model, then the physics."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from crbnn.estimate import nlls, varpro

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
    _, _, jac = varpro._projected(y, g, dg)
    h = 1e-6
    for p in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[p] = h
        gp, _ = toy(th + e, False)
        gm, _ = toy(th - e, False)
        _, ap, _ = varpro._projected(y, gp, None)
        _, am, _ = varpro._projected(y, gm, None)
        fd = (varpro._residual_real(y, gp, ap) - varpro._residual_real(y, gm, am)) / (2 * h)
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


# ------------------------------------------------------------------------------- multi-start

TW = torch.linspace(0.0, 10.0, 41, dtype=torch.float64)
LO_W, HI_W = np.array([0.01, -3.0]), np.array([0.1, 3.0])


def chirp(theta: torch.Tensor, jacobian: bool = True):
    """g = exp(-a t + i w t) on t in [0, 10], theta = (a, w): the cost in w has side lobes (local minima)."""
    a, w = theta[:, 0:1], theta[:, 1:2]
    g = torch.exp(-a * TW + 1j * w * TW)
    if not jacobian:
        return g, None
    return g, torch.stack([-TW * g, 1j * TW * g], dim=-1)


def _chirp_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = np.column_stack([rng.uniform(0.03, 0.07, n), rng.uniform(1.8, 2.6, n)])
    g, _ = chirp(torch.as_tensor(truth), False)
    m0 = rng.uniform(0.5, 2.0, n) * np.exp(1j * rng.uniform(0, 2 * np.pi, n))
    y = m0[:, None] * g.numpy() + 1e-3 * (rng.standard_normal((n, 41)) + 1j * rng.standard_normal((n, 41)))
    return truth, y


def test_multistart_escapes_the_wrong_basin():
    """A start at w = 0 stops in a side lobe of the cost (cost(truth) < cost(fit)); a second start in the
    right basin finds the truth, and the multi-start fit keeps it."""
    truth, y = _chirp_data(16, 5)
    wrong = np.tile([[0.05, 0.0]], (16, 1))
    single = nlls.fit_varpro(chirp, y, wrong, LO_W, HI_W)
    g_truth, _ = chirp(torch.as_tensor(truth), False)
    cost_truth = nlls.projected_cost(torch.as_tensor(y), g_truth).numpy()
    assert np.all(np.abs(single.theta[:, 1] - truth[:, 1]) > 0.3)  # every single start is lost...
    assert np.all(cost_truth < single.cost)  # ... in a local minimum
    starts = np.stack([wrong, np.tile([[0.05, 2.2]], (16, 1))], axis=1)  # [n, 2, P]
    multi = nlls.fit_multistart(chirp, y, starts, LO_W, HI_W)
    np.testing.assert_allclose(multi.theta, truth, atol=5e-3)
    assert np.all(multi.cost <= single.cost) and np.all(multi.iterations > single.iterations)
    # restart_above: only the voxels whose cost is above 3 x the median get the other starts
    mixed = np.concatenate([starts[:4], starts[4:, ::-1]])  # the first 4 start in the wrong basin
    first = nlls.fit_varpro(chirp, y, mixed[:, 0], LO_W, HI_W)
    assert first.cost[:4].min() > 3 * np.median(first.cost) > 3 * first.cost[4:].max() / 2
    sel = nlls.fit_multistart(chirp, y, mixed, LO_W, HI_W, restart_above=3.0)
    np.testing.assert_allclose(sel.theta, truth, atol=5e-3)
    np.testing.assert_array_equal(sel.iterations[4:], first.iterations[4:])  # the good ones: no restart
    assert np.all(sel.iterations[:4] > first.iterations[:4])


def test_dictionary_match_distinct_starts():
    """The k best atoms are neighbours of one basin; with ``distinct`` the starts differ in w."""
    truth, y = _chirp_data(4, 6)
    d = nlls.Dictionary.build(chirp, {"a": [0.02, 0.04, 0.06, 0.08], "w": np.linspace(-2.5, 2.5, 11)}, {}, ("a", "w"))
    assert d.atoms.shape == (44, 2) and np.allclose(np.linalg.norm(d.signals, axis=1), 1.0)
    best = d.match(y, starts=3)
    spread = d.match(y, starts=3, distinct=("w",))
    assert best.shape == spread.shape == (4, 3, 2)
    np.testing.assert_array_equal(best[:, 0], spread[:, 0])  # the same best atom
    assert np.all(np.abs(spread[:, 0, 1] - truth[:, 1]) <= 0.25)
    assert all(len(set(s[:, 1])) == 3 for s in spread)  # three different w
    assert any(len(set(b[:, 1])) < 3 for b in best)  # plain k best repeat a w
    np.testing.assert_array_equal(nlls.dictionary_start(chirp, y, {"a": [0.02, 0.04, 0.06, 0.08], "w": np.linspace(-2.5, 2.5, 11)},
                                                        {}, ("a", "w")), best[:, 0])
    with pytest.raises(ValueError, match="not fitted"):
        d.match(y, starts=2, distinct=("B1",))
    # fewer distinct values than starts: as many starts as there are values
    assert d.match(y, starts=20, distinct=("a",)).shape == (4, 4, 2)


def test_dictionary_axes_units():
    tr = 3.5e-3
    ax = nlls.dictionary_axes({"omega0": {"start": -0.9, "stop": 0.9, "num": 9, "units": "pi/TR"},
                               "B1": {"start": 0.7, "stop": 1.2, "num": 3}}, tr)
    np.testing.assert_allclose(ax["omega0"][-1], 0.9 * np.pi / tr)
    assert ax["B1"] == [0.7, 0.95, 1.2]
    with pytest.raises(ValueError, match="need the pulse train's TR"):
        nlls.dictionary_axes({"omega0": {"start": -0.9, "stop": 0.9, "num": 9, "units": "pi/TR"}})
    with pytest.raises(ValueError, match="omega0 only"):
        nlls.dictionary_axes({"T1": {"start": 0.5, "stop": 2.0, "num": 3, "units": "pi/TR"}}, tr)
