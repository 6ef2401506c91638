"""Numerical phantoms: labels, constraints, deterministic noisy coefficients for a seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crbnn.images.phantom import Phantom, brain_labels, make_phantom, simulate_phantom, vial_labels

torch.set_num_threads(1)

BRAIN = {"size": [8, 8], "brain": {"WM": {"m0s": 0.13, "T1": 1.0, "T2f": 0.07}, "GM": {"m0s": 0.07, "T1": 1.4, "T2f": 0.08},
                                   "CSF": {"m0s": 0.0, "T1": 2.4, "T2f": 0.2}}}


class _Seq:
    def __init__(self, n: int = 6) -> None:
        self.alpha = np.concatenate([[np.pi], np.full(n - 1, 0.3)])
        self.trf = np.concatenate([[5e-4], np.full(n - 1, 3e-4)])
        self.tr = 3.5e-3


def _basis(n: int = 6, r: int = 3) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((n, r)))
    return q.astype(np.complex128)


def test_vial_and_brain_labels_cover_every_region():
    lab = vial_labels((32, 32), 10)
    assert set(np.unique(lab)) == set(range(12))
    assert set(np.unique(brain_labels((32, 32)))) == {0, 1, 2, 3}


def test_brain_phantom_values_fields_and_mask():
    p = make_phantom("brain", {**BRAIN, "b1_range": [0.8, 1.2], "omega0_max": 50.0})
    assert isinstance(p, Phantom) and p.shape == (8, 8, 1)
    m = p.mask
    assert np.all(np.isnan(p.maps["T1"][~m])) and np.all(np.isfinite(p.maps["T1"][m]))
    wm = p.labels == 1
    assert np.allclose(p.maps["m0s"][wm], 0.13) and np.allclose(p.maps["T1"][wm], 1.0)
    assert 0.8 <= np.nanmin(p.maps["B1"]) and np.nanmax(p.maps["B1"]) <= 1.2
    assert np.nanmax(np.abs(p.maps["omega0"])) <= 50.0
    assert np.all(p.m0[~m] == 0) and np.ptp(np.angle(p.m0[m])) > 0  # spatially varying phase
    assert np.all(p.maps["T2f"][m] < p.maps["T1"][m])


def test_region_constraint_violation_names_the_region():
    bad = {**BRAIN, "brain": {**BRAIN["brain"], "GM": {"m0s": 0.07, "T1": 0.05, "T2f": 0.08}}}
    with pytest.raises(ValueError, match="GM.*T2f < T1"):
        make_phantom("brain", bad)
    with pytest.raises(ValueError, match="unknown phantom kind"):
        make_phantom("cube", BRAIN)


def test_simulated_phantom_is_deterministic_for_a_seed():
    p = make_phantom("brain", BRAIN)
    seq, u = _Seq(), _basis()
    c1, n1, s1 = simulate_phantom(p, seq, u, snr=20.0, seed=5)
    c2, n2, s2 = simulate_phantom(p, seq, u, snr=20.0, seed=5)
    _, n3, _ = simulate_phantom(p, seq, u, snr=20.0, seed=6)
    assert np.array_equal(n1, n2) and np.array_equal(c1, c2) and s1 == s2 == pytest.approx(1 / 20)
    assert not np.array_equal(n1, n3)
    assert np.all(n1[~p.mask] == 0) and np.all(np.abs(c1[p.mask]).sum(-1) > 0)
    # noise-free image = M0 x coefficients at M0 = 1: the ratio's phase is M0's phase (and its modulus |M0|)
    i = tuple(np.argwhere(p.mask)[0])
    c0, _, _ = simulate_phantom(p, seq, u, snr=None, seed=5)
    assert np.array_equal(c0, c1)
    from crbnn.data.simulate import simulate_coefficients

    k = int(np.argmax(np.abs(np.angle(p.m0[p.mask]))))  # the mask voxel (row of p.table()) of largest phase
    j = tuple(np.argwhere(p.mask)[k])
    g = simulate_coefficients(seq.alpha, seq.trf, seq.tr, u, p.table()[k : k + 1], with_jacobian=False)["coefficients"][0]
    ratio = c0[j] / g
    assert np.allclose(ratio, p.m0[j], rtol=1e-12)
    assert np.allclose(np.angle(ratio), np.angle(p.m0[j]), atol=1e-12) and abs(np.angle(p.m0[j])) > 1e-3
    assert np.std((n1[p.mask] - c1[p.mask]).real) == pytest.approx(s1, rel=0.2)  # sigma per real part
    assert c1[i].shape == (3,)
