"""Priors: seeded, within bounds, constraints hold, truncated-normal moments."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.stats import truncnorm

from crbnn.common.parameters import TISSUE_PARAMETERS
from crbnn.common.seeds import derive_seed
from crbnn.data.priors import PriorError, sample_parameters

REPO = Path(__file__).resolve().parents[1]
PRIORS = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["priors"]
TR = 3.5e-3


def test_deterministic_for_a_seed() -> None:
    a = sample_parameters(PRIORS, 500, seed=7, tr=TR)
    b = sample_parameters(PRIORS, 500, seed=7, tr=TR)
    c = sample_parameters(PRIORS, 500, seed=8, tr=TR)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (500, 7) and a.dtype == np.float64


def test_within_bounds_and_constraint() -> None:
    x = sample_parameters(PRIORS, 4000, seed=1, tr=TR)
    for j, name in enumerate(TISSUE_PARAMETERS):
        spec = PRIORS["parameters"][name]
        scale = np.pi / TR if spec.get("units") == "pi/TR" else 1.0
        if spec["dist"] == "fixed":  # known parameters (the default regime: Rex, T2s)
            assert np.all(x[:, j] == spec["value"] * scale), name
            continue
        assert np.all(x[:, j] >= spec["low"] * scale) and np.all(x[:, j] <= spec["high"] * scale), name
    assert np.all(x[:, 2] < x[:, 1])


def test_constraint_forces_redraws() -> None:
    pri = copy.deepcopy(PRIORS)
    pri["parameters"]["T2f"] = {"dist": "uniform", "low": 0.1, "high": 1.0}
    pri["parameters"]["T1"] = {"dist": "uniform", "low": 0.1, "high": 1.0}
    x = sample_parameters(pri, 2000, seed=3, tr=TR)
    assert np.all(x[:, 2] < x[:, 1])
    pri["parameters"]["T1"] = {"dist": "fixed", "value": 0.05}
    with pytest.raises(PriorError, match="still violate"):
        sample_parameters(pri, 10, seed=3, tr=TR)


def test_truncnormal_moments() -> None:
    spec = PRIORS["parameters"]["m0s"]
    x = sample_parameters(PRIORS, 20000, seed=2, tr=TR)[:, 0]
    a, b = (spec["low"] - spec["mean"]) / spec["std"], (spec["high"] - spec["mean"]) / spec["std"]
    mean, var = truncnorm.stats(a, b, loc=spec["mean"], scale=spec["std"], moments="mv")
    assert x.mean() == pytest.approx(float(mean), abs=4 * np.sqrt(var / x.size))
    assert x.var() == pytest.approx(float(var), rel=0.05)


def test_reciprocal_and_loguniform() -> None:
    pri = copy.deepcopy(PRIORS)
    pri["parameters"]["T2f"] = {"dist": "truncnormal", "mean": 12.5, "std": 4, "low": 1, "high": 20, "transform": "reciprocal"}
    pri["parameters"]["Rex"] = {"dist": "loguniform", "low": 1.0, "high": 100.0}
    x = sample_parameters(pri, 4000, seed=4, tr=TR)
    assert x[:, 2].min() >= 1 / 20 and x[:, 2].max() <= 1.0
    assert np.median(np.log10(x[:, 3])) == pytest.approx(1.0, abs=0.1)


def test_bad_priors() -> None:
    pri = copy.deepcopy(PRIORS)
    pri["parameters"]["B1"] = {"dist": "uniform", "low": 1.2, "high": 0.8}
    with pytest.raises(PriorError, match=r"priors\.B1: need low < high"):
        sample_parameters(pri, 5, seed=0, tr=TR)
    with pytest.raises(PriorError, match="pi/TR"):
        sample_parameters(PRIORS, 5, seed=0, tr=None)


def test_derived_seeds_distinct() -> None:
    seeds = {derive_seed(2022, n) for n in ("train", "val", "test", "basis")}
    assert len(seeds) == 4
