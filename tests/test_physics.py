"""Physics against docs/physics.md oracles, finite differences and the plain reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from crbnn.common.parameters import GENERAL_PARAMETERS, PAPER_PARAMETERS
from crbnn.physics.expm import expm_frechet_torch
from crbnn.physics.greens import greens_superlorentzian
from crbnn.physics.r2sl import R2slTable, _solve_rho, default_table, solve_volterra
from crbnn.physics.reference import steady_state_signal
from crbnn.physics.signal import _hamiltonian_entries, simulate, simulate_paper

torch.set_num_threads(1)
TR = 3.5e-3
P_ORACLE = dict(M0=1.0, m0s=0.15, R1f=0.5, R2f=15.0, Rex=30.0, R1s=3.0, T2s=10e-6, omega0=0.0, B1=1.0)
S_FIRST = [-0.355900208848632, -0.2587967919638072, -0.1419918348574934, -0.06842108345163278,
           -0.025059481062928022, -0.024838885366256218, -0.007136448918897868,
           -0.01533693523425317, -0.0034896625579282727, -0.012787743351199645]
S_LAST = [0.009571162811461562, 0.01015200266899922, 0.011462673073508452, 0.014501245088328337,
          0.021284663250329967, 0.035816661379313164, 0.07337672133106851, 0.17203648560756177,
          0.2838939689166648, 0.3750841419498616]


def test_greens_oracle_and_limits():
    assert abs(float(greens_superlorentzian(10.0)) - 0.14712468680944424) < 1e-13
    assert float(greens_superlorentzian(0.0)) == pytest.approx(1.0, abs=1e-15)
    k = 500.0
    assert float(greens_superlorentzian(k)) * k == pytest.approx(math.sqrt(2 * math.pi / 3), rel=1e-4)


@pytest.mark.parametrize("tau,alpha,expected", [(20.0, math.pi / 2, 0.1926), (20.0, math.pi, 0.1900), (50.0, math.pi / 2, 0.1681)])
def test_r2sl_representative_values(tau, alpha, expected):
    om = np.array([alpha / tau])
    t, z = solve_volterra(om, tau, h=0.1)
    rho = _solve_rho(np.array([tau]), om, z[-1])
    assert rho[0] == pytest.approx(expected, abs=6e-5)


def test_volterra_richardson_converged():
    om = np.array([0.05, 0.15])
    _, z1 = solve_volterra(om, 30.0, h=0.1)
    _, z2 = solve_volterra(om, 30.0, h=0.05)
    assert np.abs(z1 - z2[::2]).max() < 1e-10


def test_r2sl_table_errors_and_derivatives():
    table = default_table()
    assert np.array_equal(table.rho[:, 0], table.rho[:, 1])
    f64 = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    with pytest.raises(ValueError, match=r"tau = TRF/T2s = 250 outside the grid range \[4\.7619, 100\].*T2s=2e-06"):
        table.lookup(f64(5e-4), f64(1.0), f64(1.0), f64(2e-6))
    with pytest.raises(ValueError, match="Omega"):
        table.lookup(f64(1e-4), f64(math.pi), f64(1.5), f64(20e-6))
    trf, alpha, b1, t2s = f64(3.1e-4), f64(1.1), f64(0.93), f64(11.3e-6)
    r, dt2s, db1 = table.lookup(trf, alpha, b1, t2s)
    h = 1e-10
    fd_t2s = (table.lookup(trf, alpha, b1, t2s + h)[0] - table.lookup(trf, alpha, b1, t2s - h)[0]) / (2 * h)
    fd_b1 = (table.lookup(trf, alpha, b1 + 1e-7, t2s)[0] - table.lookup(trf, alpha, b1 - 1e-7, t2s)[0]) / 2e-7
    assert float(dt2s) == pytest.approx(float(fd_t2s), rel=1e-5)
    assert float(db1) == pytest.approx(float(fd_b1), rel=1e-5)


def test_r2sl_table_roundtrip(tmp_path):
    small = R2slTable.build(n_tau=16, n_omega=8)
    small.save(tmp_path / "t.h5")
    back = R2slTable.load(tmp_path / "t.h5")
    assert np.array_equal(back.rho, small.rho) and back.grid == small.grid


def test_single_interval_oracle():
    p = {k: torch.tensor(v, dtype=torch.float64) for k, v in dict(m0s=0.1, R1f=1.0, R2f=15.0, Rex=30.0, R1s=6.5, omega0=0.0, B1=1.0).items()}
    t = 500e-6
    ent = _hamiltonian_entries(p, torch.tensor(math.pi / t, dtype=torch.float64), torch.tensor(1e5, dtype=torch.float64))
    h = torch.zeros(1, 6, 6, dtype=torch.float64)
    for (i, j), v in ent.items():
        h[0, i, j] = v * t
    r, _ = expm_frechet_torch(h)
    m = r[0] @ torch.tensor([0, 0, 0.9, 0, 0.1, 1], dtype=torch.float64)
    expected = [0.0010647535813058293, 0, -0.8957848274535014, 0.005126529591877105, 0.08122007142111888, 1]
    assert np.abs(m.numpy() - expected).max() < 1e-12


def test_whole_train_oracle(sequence):
    alpha, trf = sequence
    s, _ = simulate(alpha, trf, TR, P_ORACLE)
    assert s.shape == (1142,)
    assert float(s.imag.abs().max()) == 0.0
    assert np.abs(s.real[:10].numpy() - S_FIRST).max() < 1e-6
    assert np.abs(s.real[-10:].numpy() - S_LAST).max() < 1e-6


def test_against_plain_reference_two_cycles(sequence):
    """Two back-to-back cycles of the explicit reference reproduce the periodic steady state."""
    alpha, trf = sequence
    n = 150  # a shortened train keeps the reference fast
    a, t = alpha[:n].numpy(), trf[:n].numpy()
    p = dict(M0=0.7, m0s=0.12, R1f=0.8, R2f=12.0, Rex=20.0, R1s=2.0, T2s=12e-6, omega0=150.0, B1=0.95)
    ref = steady_state_signal(a, t, TR, p, cycles=2)
    s, _ = simulate(a, t, TR, p)
    s = s.numpy()
    assert np.abs(ref[:n] - s).max() < 1e-12
    assert np.abs(ref[n:] - s).max() < 1e-10


def _fd_check(fn, params, names, wrt_names, rel_tol):
    base, jac = fn(params, wrt_names)
    # one batched call holding all +h/-h evaluations
    batch = {k: [] for k in params}
    steps = []
    for nm in names:
        for sign in (1, -1):
            for k, v in params.items():
                val = v
                if k == nm or (nm == "M0_re" and k == "M0") or (nm == "M0_im" and k == "M0"):
                    if nm == "M0_re":
                        val = v + sign * 1e-6
                    elif nm == "M0_im":
                        val = v + sign * 1e-6j
                    else:
                        val = v + sign * abs(v) * 1e-5
                batch[k].append(val)
        steps.append(1e-6 if nm.startswith("M0_") else abs(params[nm]) * 1e-5)
    bt = {k: torch.tensor(v, dtype=torch.complex128 if any(isinstance(x, complex) for x in v) else torch.float64) for k, v in batch.items()}
    s_all, _ = fn(bt, ())
    for i, nm in enumerate(names):
        fd = (s_all[2 * i] - s_all[2 * i + 1]) / (2 * steps[i])
        col = jac[:, wrt_names.index(nm)]
        err = float((fd - col).abs().max() / col.abs().max())
        assert err < rel_tol, f"d/d{nm}: relative error {err:.2e}"


def test_jacobian_general_vs_finite_differences(sequence):
    alpha, trf = sequence
    p = dict(M0=0.8, m0s=0.15, R1f=0.6, R2f=14.0, Rex=25.0, R1s=3.0, T2s=12.5e-6, omega0=120.0, B1=0.92)
    fn = lambda prm, wrt: simulate(alpha, trf, TR, prm, wrt=wrt)  # noqa: E731
    _fd_check(fn, p, list(GENERAL_PARAMETERS), list(GENERAL_PARAMETERS), 1e-5)


def test_jacobian_paper_vs_finite_differences(sequence):
    alpha, trf = sequence
    p = dict(M0=0.3 + 0.4j, m0s=0.1, T1=1.2, T2f=0.07, Rex=15.0, T2s=12e-6, omega0=-200.0, B1=1.1)
    fn = lambda prm, wrt: simulate_paper(alpha, trf, TR, prm, wrt=wrt)  # noqa: E731
    names = list(PAPER_PARAMETERS)
    _fd_check(fn, p, names, names, 1e-5)


def test_paper_equals_general(sequence):
    alpha, trf = sequence
    s1, _ = simulate_paper(alpha[:50], trf[:50], TR, dict(M0=0.5, m0s=0.1, T1=1.5, T2f=0.08, Rex=12.0, T2s=11e-6, omega0=30.0, B1=1.0))
    s2, _ = simulate(alpha[:50], trf[:50], TR, dict(M0=0.5, m0s=0.1, R1f=1 / 1.5, R1s=1 / 1.5, R2f=12.5, Rex=12.0, T2s=11e-6, omega0=30.0, B1=1.0))
    assert torch.allclose(s1, s2.to(torch.complex128), atol=1e-14)


def test_batched_equals_single(sequence):
    alpha, trf = sequence
    f64 = torch.float64
    p = dict(M0=1.0, m0s=torch.tensor([0.05, 0.2], dtype=f64), R1f=0.5, R2f=15.0, Rex=30.0, R1s=3.0, T2s=10e-6, omega0=0.0, B1=torch.tensor([0.9, 1.1], dtype=f64))
    s, j = simulate(alpha[:80], trf[:80], TR, p, wrt=("m0s", "B1"), chunk=1)
    s1, j1 = simulate(alpha[:80], trf[:80], TR, {**p, "m0s": 0.2, "B1": 1.1}, wrt=("m0s", "B1"))
    assert torch.allclose(s[1], s1, atol=1e-15) and torch.allclose(j[1], j1, atol=1e-13)


def test_bad_pulse_train_errors(sequence):
    alpha, trf = sequence
    p = dict(P_ORACLE)
    bad = alpha.clone()
    bad[3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        simulate(bad, trf, TR, p)
    neg = trf.clone()
    neg[5] = -1e-4
    with pytest.raises(ValueError, match="TRF must be > 0"):
        simulate(alpha, neg, TR, p)
    with pytest.raises(ValueError, match="equal length"):
        simulate(alpha[:10], trf[:11], TR, p)
    with pytest.raises(KeyError, match="wrt"):
        simulate(alpha, trf, TR, p, wrt=("T1",))
    with pytest.raises(TypeError, match="float64"):
        simulate(alpha.float(), trf, TR, p)
    with pytest.raises(ValueError, match="outside the grid"):
        simulate(alpha, trf, TR, {**p, "T2s": 2e-6})


def test_torch_path_equals_compiled_cpu_path(sequence, monkeypatch):
    """The pure-torch code (used on GPUs) and the numba CPU kernels give the same signal and Jacobian."""
    import crbnn.physics.recurrence as recurrence
    import crbnn.physics.signal as physics
    from crbnn.physics.expm import expm_frechet_torch as torch_expm

    alpha, trf = sequence
    p = dict(M0=0.3 - 0.2j, m0s=0.12, T1=1.1, T2f=0.06, Rex=18.0, T2s=11e-6, omega0=80.0, B1=1.05)
    s_fast, j_fast = simulate_paper(alpha, trf, TR, p, wrt=PAPER_PARAMETERS)
    monkeypatch.setattr(physics, "expm_frechet", torch_expm)
    monkeypatch.setattr(recurrence, "_HAVE_NUMBA", False)
    s_torch, j_torch = simulate_paper(alpha, trf, TR, p, wrt=PAPER_PARAMETERS)
    assert float((s_fast - s_torch).abs().max()) < 1e-12
    rel = ((j_fast - j_torch).abs().amax(0) / j_torch.abs().amax(0)).max()
    assert float(rel) < 1e-10
