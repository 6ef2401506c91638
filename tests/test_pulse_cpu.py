"""crbnn.physics.pulse_cpu: L(A, E_k) v of the pulse generators equals the full Frechet derivative applied to v."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from crbnn.physics import hamiltonian
from crbnn.physics import signal as physics
from crbnn.physics.expm import expm_frechet_torch
from crbnn.physics.expm_cpu import BLOCK, expm_cached_cpu
from crbnn.physics.pulse_cpu import ELEMENTARY_CPU, pulse_directional_cpu

XS, ZS = 3, 4


def physics_like(s_count: int, n: int, k: int, trf_scale: float, seed: int):
    """Pulse generators with the Hamiltonian's pattern (pulse 1: semi-solid block only), their
    directions built from random elementary coefficients, and random state vectors."""
    g = np.random.default_rng(seed)
    trf = torch.as_tensor(g.uniform(1e-4, 1e-3, n) * trf_scale)
    alpha = torch.as_tensor(g.uniform(0, math.pi, n))
    w1 = alpha / trf
    pars = np.column_stack([g.uniform(0, 0.3, s_count), g.uniform(0.3, 2, s_count), g.uniform(0.3, 5, s_count), g.uniform(5, 40, s_count)])
    coef = g.normal(size=(s_count, k, len(ELEMENTARY_CPU)))
    cr2 = g.normal(size=(s_count, n, k)) * 1e3
    r2 = g.uniform(1e3, 2e4, (s_count, n))
    b1, om, r2f = g.uniform(0.7, 1.3, s_count), g.uniform(-300, 300, s_count), g.uniform(5, 30, s_count)
    keep = np.zeros((6, 6))
    keep[XS, XS] = keep[XS, ZS] = keep[ZS, XS] = 1.0
    a = np.zeros((s_count, n, 6, 6))
    e = np.zeros((s_count, n, 6, k, 6))
    for s in range(s_count):
        m0s, r1f, r1s, rex = pars[s]
        p = {key: torch.tensor(v) for key, v in dict(m0s=m0s, R1f=r1f, R1s=r1s, Rex=rex, R2f=r2f[s], omega0=om[s], B1=b1[s]).items()}
        for t in range(n):
            for (i, j), v in hamiltonian._hamiltonian_entries(p, w1[t], torch.tensor(r2[s, t])).items():
                a[s, t, i, j] = float(v) * trf[t]
            for d in range(k):
                for c, name in enumerate(ELEMENTARY_CPU):
                    for i, j, v in hamiltonian._elementary_entries(name, p, w1[t]):
                        e[s, t, i, d, j] += coef[s, d, c] * float(v) * trf[t]
                e[s, t, XS, d, XS] -= cr2[s, t, d] * trf[t]
            if t == 0:
                a[s, t] *= keep
                e[s, t] *= keep[:, None, :]
    v = torch.as_tensor(g.normal(size=(s_count * n, 6)))
    v[:, 5] = 1.0
    return (torch.as_tensor(a.reshape(-1, 6, 6)), torch.as_tensor(e.reshape(-1, 6, k, 6)), v, trf, w1,
            torch.as_tensor(pars), torch.as_tensor(coef), torch.as_tensor(cr2))


@pytest.mark.parametrize("s_count,n,k,trf_scale", [(1, 5, 1, 1.0), (3, 70, 7, 1.0), (2, BLOCK + 3, 3, 4.0), (2, 40, 2, 0.05)])
def test_directional_equals_frechet_times_vector(s_count: int, n: int, k: int, trf_scale: float) -> None:
    a, e, v, trf, w1, pars, coef, cr2 = physics_like(s_count, n, k, trf_scale, seed=s_count + n + k)
    r0, l0 = expm_frechet_torch(a, e)
    ref = torch.einsum("bikj,bj->bik", l0, v)
    r1, cache = expm_cached_cpu(a)
    assert float((r1 - r0).abs().max() / r0.abs().max()) < 1e-13
    if trf_scale > 1:
        assert int(cache.s.max()) >= 2  # several squarings exercised
    out = pulse_directional_cpu(cache, v, trf, w1, pars, coef, cr2)
    assert out.shape == (s_count * n, 6, k) and float(out[:, 5].abs().max()) == 0.0
    err = (out - ref).abs().amax(1) / ref.abs().amax(1).clamp_min(1e-300)
    assert float(err.max()) < 1e-12


def test_no_directions_and_bad_input() -> None:
    a, _, v, trf, w1, pars, coef, cr2 = physics_like(1, 4, 1, 1.0, seed=0)
    _, cache = expm_cached_cpu(a)
    assert pulse_directional_cpu(cache, v, trf, w1, pars, coef[:, :0], cr2[..., :0]).shape == (4, 6, 0)
    bad = a.clone()
    bad[:, 5, 0] = 1.0
    with pytest.raises(ValueError, match="zero last row"):
        expm_cached_cpu(bad)


def test_block_sources_kernel_used_and_equal_to_generic(monkeypatch: pytest.MonkeyPatch) -> None:
    """The free-precession operators of the model have the block pattern, so the sources kernel that
    skips their zeros is used; it gives the numbers of the generic kernel."""
    import crbnn.physics.recurrence as rec

    alpha = torch.tensor([math.pi, 0.3, 0.8, 1.2, 0.5, 0.05] * 3, dtype=torch.float64)
    trf = torch.tensor([5e-4, 3e-4, 1e-4, 4e-4, 2.5e-4, 4.5e-4] * 3, dtype=torch.float64)
    p = dict(M0=0.3 + 0.4j, m0s=torch.tensor([0.05, 0.2], dtype=torch.float64), T1=1.1, T2f=0.06, Rex=18.0, T2s=11e-6,
             omega0=torch.tensor([-80.0, 120.0], dtype=torch.float64), B1=1.05)
    calls = []
    block = rec._sources_dpv_fp_nb

    def spy(*args):
        calls.append(1)
        return block(*args)

    monkeypatch.setattr(rec, "_sources_dpv_fp_nb", spy)
    s0, j0 = physics.simulate_paper(alpha, trf, 3.5e-3, p, wrt=physics.PAPER_PARAMETERS)
    assert calls
    monkeypatch.setattr(rec, "_sources_dpv_fp_nb", rec._sources_dpv_nb)
    s1, j1 = physics.simulate_paper(alpha, trf, 3.5e-3, p, wrt=physics.PAPER_PARAMETERS)
    assert torch.equal(s0, s1)
    assert float((j1 - j0).abs().max() / j0.abs().max()) < 1e-13
