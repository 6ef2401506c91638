"""The numba CPU kernel crbnn.physics.expm_cpu.expm_frechet_cpu agrees with crbnn.physics.expm.expm_frechet_torch and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

import crbnn.physics.signal as physics
from crbnn.physics.expm import expm_frechet_torch
from crbnn.physics.expm_cpu import BLOCK, expm_frechet_cpu

F64 = torch.float64
TOL = 1e-13


def generators(bsz: int, k: int, lo: float = 0.1, hi: float = 20.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random affine generators (zero last row, dissipative diagonal) with 1-norms log-uniform in [lo, hi]."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(bsz, 6, 6, dtype=F64, generator=g)
    d = torch.arange(5)
    a[:, d, d] = -2.0 * a[:, d, d].abs()
    a[:, 5] = 0.0
    norm = a.abs().sum(-2).amax(-1)
    target = torch.exp(torch.empty(bsz, dtype=F64).uniform_(math.log(lo), math.log(hi), generator=g))
    a = a * (target / norm)[:, None, None]
    e = torch.randn(bsz, 6, k, 6, dtype=F64, generator=g)
    e[:, 5] = 0.0
    return a, e


def reference(a: torch.Tensor, e: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """crbnn.physics.expm.expm_frechet_torch on one torch thread (many tiny bmm calls are slow multi-threaded)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return expm_frechet_torch(a, e)
    finally:
        torch.set_num_threads(n)


def relerr(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Largest per-matrix (per direction) max-abs error relative to the matrix's max-abs entry."""
    if ref.ndim == 4:
        x, ref = x.transpose(1, 2), ref.transpose(1, 2)
        x, ref = x.reshape(-1, 36), ref.reshape(-1, 36)
    else:
        x, ref = x.reshape(len(x), -1), ref.reshape(len(ref), -1)
    if ref.numel() == 0:
        return 0.0
    return float(((x - ref).abs().amax(1) / ref.abs().amax(1).clamp_min(1e-300)).max())


@pytest.mark.parametrize("bsz,k", [(1, 1), (BLOCK - 1, 3), (BLOCK, 8), (3 * BLOCK + 5, 7), (300, 2)])
def test_agrees_with_torch(bsz: int, k: int) -> None:
    a, e = generators(bsz, k, seed=bsz + k)
    r, lder = expm_frechet_cpu(a, e)
    r0, l0 = reference(a, e)
    assert r.dtype == F64 and lder.dtype == F64 and r.shape == r0.shape and lder.shape == l0.shape
    assert relerr(r, r0) < TOL
    assert relerr(lder, l0) < TOL


@pytest.mark.parametrize("lo,hi", [(1e-3, 0.1), (0.1, 5.0), (5.0, 7.0), (15.0, 20.0), (20.0, 200.0)])
def test_norm_ranges(lo: float, hi: float) -> None:
    a, e = generators(2 * BLOCK + 3, 4, lo, hi, seed=int(hi))
    r, lder = expm_frechet_cpu(a, e)
    r0, l0 = reference(a, e)
    assert relerr(r, r0) < TOL
    assert relerr(lder, l0) < TOL


def test_zero_last_row_structure() -> None:
    a, e = generators(BLOCK + 7, 5, seed=3)
    r, lder = expm_frechet_cpu(a, e)
    assert torch.equal(r[:, 5], torch.tensor([0.0, 0, 0, 0, 0, 1], dtype=F64).expand(len(a), 6))
    assert torch.equal(lder[:, 5], torch.zeros_like(lder[:, 5]))


def test_against_scipy_single_matrices() -> None:
    a, e = generators(12, 3, 0.05, 20.0, seed=11)
    r, lder = expm_frechet_cpu(a, e)
    for b in range(len(a)):
        an = a[b].numpy()
        assert np.abs(r[b].numpy() - scipy.linalg.expm(an)).max() <= TOL * np.abs(r[b].numpy()).max()
        for k in range(e.shape[2]):
            ref_r, ref_l = scipy.linalg.expm_frechet(an, e[b, :, k, :].numpy())
            assert np.abs(r[b].numpy() - ref_r).max() <= TOL * np.abs(ref_r).max()
            assert np.abs(lder[b, :, k, :].numpy() - ref_l).max() <= 1e-12 * np.abs(ref_l).max()


def test_no_directions_and_empty() -> None:
    a, e = generators(BLOCK + 1, 0, seed=5)
    r, lder = expm_frechet_cpu(a, e)
    assert lder.shape == (BLOCK + 1, 6, 0, 6)
    r2, none = expm_frechet_cpu(a)
    assert none is None and torch.equal(r, r2)
    assert relerr(r, reference(a)[0]) < TOL
    r0, l0 = expm_frechet_cpu(torch.zeros(0, 6, 6, dtype=F64), torch.zeros(0, 6, 8, 6, dtype=F64))
    assert r0.shape == (0, 6, 6) and l0.shape == (0, 6, 8, 6)
    assert expm_frechet_cpu(torch.zeros(0, 6, 6, dtype=F64))[1] is None


def test_threads_and_noncontiguous() -> None:
    a, e = generators(4 * BLOCK + 9, 3, seed=9)
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        r1, l1 = expm_frechet_cpu(a, e)
        torch.set_num_threads(max(2, n))
        r2, l2 = expm_frechet_cpu(a.transpose(1, 2).contiguous().transpose(1, 2), e)
    finally:
        torch.set_num_threads(n)
    assert torch.equal(r1, r2) and torch.equal(l1, l2)


def test_unsupported_inputs_fall_back() -> None:
    a, e = generators(10, 2, seed=1)
    a[:, 5, 2] = 0.3  # not an affine generator
    r, lder = expm_frechet_cpu(a, e)
    r0, l0 = reference(a, e)
    assert torch.allclose(r, r0, rtol=0, atol=0) and torch.allclose(lder, l0, rtol=0, atol=0)
    c = torch.randn(3, 4, 4, dtype=torch.complex128)
    assert torch.equal(expm_frechet_cpu(c)[0], reference(c)[0])


def test_physics_matrices_and_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Matrices as the physics model builds them; the full signal + Jacobian with the kernel swapped in."""
    alpha = torch.tensor([math.pi, 0.3, 0.8, 1.2, 0.5, 0.05] * 2, dtype=F64)
    trf = torch.tensor([5e-4, 3e-4, 1e-4, 4e-4, 2.5e-4, 4.5e-4] * 2, dtype=F64)
    p = dict(M0=0.3 + 0.4j, m0s=[0.05, 0.1, 0.25], T1=[0.8, 1.2, 2.0], T2f=[0.05, 0.07, 0.12], Rex=[8.0, 15.0, 40.0],
             T2s=[9e-6, 12e-6, 15e-6], omega0=[-250.0, 0.0, 300.0], B1=[0.7, 1.0, 1.2])
    p = {key: torch.tensor(v, dtype=F64) if isinstance(v, list) else v for key, v in p.items()}
    wrt = physics.PAPER_PARAMETERS
    calls = []

    def spy(a, e=None, chunk=None):
        calls.append((a.clone(), None if e is None else e.clone()))
        return expm_frechet_torch(a, e, chunk)

    monkeypatch.setattr(physics, "expm_frechet", spy)
    s0, j0 = physics.simulate_paper(alpha, trf, 3.5e-3, p, wrt=wrt)
    assert calls
    for a, e in calls:
        r, lder = expm_frechet_cpu(a, e)
        r0, l0 = reference(a, e)
        assert relerr(r, r0) < TOL
        nz = l0.transpose(1, 2).reshape(-1, 36).abs().amax(1) > 0  # directions that vanish for this matrix
        lt, l0t = lder.transpose(1, 2).reshape(-1, 36), l0.transpose(1, 2).reshape(-1, 36)
        assert float(lt[~nz].abs().max()) == 0.0 if (~nz).any() else True
        assert relerr(lt[nz], l0t[nz]) < TOL
    monkeypatch.setattr(physics, "expm_frechet", lambda a, e=None, chunk=None: expm_frechet_cpu(a, e))
    s1, j1 = physics.simulate_paper(alpha, trf, 3.5e-3, p, wrt=wrt)
    assert float((s1 - s0).abs().max() / s0.abs().max()) < 1e-12
    assert float((j1 - j0).abs().max() / j0.abs().max()) < 1e-12
