"""The estimation regime: known parameters, config consistency, and the Fisher matrix it implies."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import yaml
from workflow_helpers import REPO

from crbnn.config.regime import RegimeError, check_regime, known_parameters, known_values
from crbnn.data.simulate import simulate_coefficients
from crbnn.images.phantom import make_phantom
from crbnn.physics.crb import crb

torch.set_num_threads(1)
PAPER_NUISANCE = ["M0_re", "M0_im", "omega0", "B1"]
ALL_NUISANCE = ["M0_re", "M0_im", "Rex", "T2s", "omega0", "B1"]


def _config(name: str = "config.yaml") -> dict:
    return yaml.safe_load((REPO / "config" / name).read_text())


def test_default_configs_are_the_papers_regime():
    for name in ("config.yaml", "paper.yaml", "test.yaml"):
        cfg = _config(name)
        assert cfg["model"]["nuisance"] == PAPER_NUISANCE, name
        assert check_regime(cfg) == {"Rex": 13.6, "T2s": 1.25e-5}, name


def test_full_nuisance_overlay_has_no_known_parameter():
    cfg = _config()
    overlay = _config("full-nuisance.yaml")
    cfg["model"].update(overlay["model"])
    cfg["priors"]["parameters"].update(overlay["priors"]["parameters"])
    cfg["nlls"].update(overlay["nlls"])
    assert check_regime(cfg) == {}
    assert known_parameters(cfg["model"]["estimated"], cfg["model"]["nuisance"]) == ()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["model"].update(nuisance=[*PAPER_NUISANCE, "m0s"]), "both list ['m0s']"),
        (lambda c: c["priors"]["parameters"].update(Rex={"dist": "uniform", "low": 2.0, "high": 30.0}),
         "priors.parameters.Rex"),
        (lambda c: c["nlls"].update(fit=["m0s", "T1", "T2f", "Rex", "T2s", "omega0", "B1"]), "nlls.fit"),
        (lambda c: c["nlls"]["nominal"].update(Rex=12.0), "nlls.nominal.Rex = 12.0"),
        (lambda c: c["grids"]["fixed"].update(T2s=1.0e-5), "grids.fixed.T2s"),
        (lambda c: c["grids"]["sets"]["m0s-T1"]["axes"].update(Rex={"start": 5, "stop": 20, "num": 3}),
         "grids.sets.m0s-T1.axes varies Rex"),
        (lambda c: c.setdefault("phantom", {}).update(brain={"WM": {"m0s": 0.1, "T1": 1.0, "T2f": 0.07, "Rex": 15.0}}),
         "phantom.brain.WM.Rex = 15.0"),
    ],
)
def test_inconsistent_regime_is_named(edit, message):
    cfg = copy.deepcopy(_config())
    edit(cfg)
    with pytest.raises(RegimeError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        check_regime(cfg)


def test_known_value_must_be_a_fixed_prior():
    with pytest.raises(RegimeError, match="must be 'dist: fixed'"):
        known_values({"Rex": {"dist": "truncnormal"}}, ["m0s", "T1", "T2f", "T2s"], PAPER_NUISANCE)


def test_phantom_regions_take_the_known_values():
    s = {"size": [8, 8], "brain": {"WM": {"m0s": 0.13, "T1": 1.0, "T2f": 0.07}, "GM": {"m0s": 0.07, "T1": 1.4, "T2f": 0.08},
                                   "CSF": {"m0s": 0.0, "T1": 2.4, "T2f": 0.2}}}
    p = make_phantom("brain", s, known={"Rex": 11.0, "T2s": 1.1e-5})
    inside = p.mask[..., 0]
    assert np.all(p.maps["Rex"][..., 0][inside] == 11.0) and np.all(p.maps["T2s"][..., 0][inside] == 1.1e-5)
    s["brain"]["WM"]["Rex"] = 15.0
    with pytest.raises(ValueError, match="'WM': Rex = 15.0 but the model holds Rex known at 11.0"):
        make_phantom("brain", s, known={"Rex": 11.0, "T2s": 1.1e-5})


def test_fisher_matrix_has_exactly_the_unknowns_of_the_config(sequence):
    """The Jacobian holds estimated + nuisance columns only; its CRB is the inverse Fisher matrix of
    those columns; with Rex and T2s known sqrt(CRB(m0s)) is several times smaller (the regime decides)."""
    alpha, trf = (t.numpy() for t in sequence)
    rng = np.random.default_rng(5)
    u = np.linalg.qr(rng.normal(size=(len(alpha), 13)) + 1j * rng.normal(size=(len(alpha), 13)))[0]
    row = np.array([[0.13, 1.3, 0.077, 13.6, 1.25e-5, 0.0, 1.0]])  # m0s, T1, T2f, Rex, T2s, omega0, B1
    est = ["m0s", "T1", "T2f"]
    known = simulate_coefficients(alpha, trf, 3.5e-3, u, row, est, PAPER_NUISANCE)
    full = simulate_coefficients(alpha, trf, 3.5e-3, u, row, est, ALL_NUISANCE)
    assert known["jacobian"].shape == (1, 13, 7) and full["jacobian"].shape == (1, 13, 9)
    # the known-regime Jacobian is the full one without the Rex and T2s columns
    keep = [0, 1, 2, 3, 4, 7, 8]
    np.testing.assert_allclose(known["jacobian"][0], full["jacobian"][0][:, keep], rtol=1e-12, atol=0)
    j = known["jacobian"][0]
    stacked = np.concatenate([j.real, j.imag])
    expected = np.diag(np.linalg.inv(stacked.T @ stacked))[:3]
    np.testing.assert_allclose(known["crb"][0], expected, rtol=1e-6)
    np.testing.assert_allclose(crb(torch.as_tensor(j), 1.0).numpy()[:3], known["crb"][0], rtol=1e-10)
    ratio = np.sqrt(full["crb"][0] / known["crb"][0])
    assert ratio[0] > 2.0, ratio  # m0s: with Rex and T2s unknown its CRB is several times wider
    assert np.all(ratio >= 1.0 - 1e-9), ratio
