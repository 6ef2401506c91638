"""The SNR sweep: statistics, bootstrap intervals and a linear Gaussian toy where least squares is efficient."""

from __future__ import annotations

import numpy as np
import pytest

from crbnn.evaluate.snr_sweep import SweepEstimator, evaluate_snr_sweep, sweep_table

SNRS = [10.0, 35.0, 100.0]


def _toy(n: int = 300, r: int = 6, e: int = 2, seed: int = 0):
    """y = M0 A theta + noise: complex A [r, e], real theta; CRB(M0 = 1, sigma = 1) = diag(inv(Re(A^H A)))."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(r, e)) + 1j * rng.normal(size=(r, e))
    theta = rng.uniform(0.5, 2.0, size=(n, e))
    crb1 = np.diag(np.linalg.inv((a.conj().T @ a).real))
    return a, theta, theta @ a.T, np.tile(crb1, (n, 1))


def _least_squares(a):
    def estimate(y, m0):
        j = m0[:, None, None] * a[None]  # [m, r, e]: the model of each row
        stacked = np.concatenate([j.real, j.imag], axis=1)
        rhs = np.concatenate([y.real, y.imag], axis=1)
        return np.stack([np.linalg.lstsq(s, b, rcond=None)[0] for s, b in zip(stacked, rhs)])

    return estimate


def test_least_squares_is_efficient_at_every_snr():
    a, theta, c, crb1 = _toy()
    ds = evaluate_snr_sweep(c, theta, crb1, ["p0", "p1"], {"ls": SweepEstimator(_least_squares(a), with_m0=True)},
                            snrs=SNRS, sigma=0.01, realizations=10, seed=3, n_boot=200)
    loss = ds["mean_loss"].sel(estimator="ls")
    # 300 samples x 10 realizations of chi2(1): standard error of the mean ~0.026
    np.testing.assert_allclose(loss.values, 1.0, atol=0.1)
    assert (ds["mean_loss_lo"] <= ds["mean_loss"]).all() and (ds["mean_loss"] <= ds["mean_loss_hi"]).all()
    lo, hi = ds["mean_loss_lo"].sel(estimator="ls"), ds["mean_loss_hi"].sel(estimator="ls")
    assert float(((lo <= 1.0) & (1.0 <= hi)).mean()) >= 0.6  # the intervals mostly cover the truth
    # sample std with 10 draws: median ratio ~0.96 for an efficient estimator; unbiased
    np.testing.assert_allclose(ds["median_std"].sel(estimator="ls").values, 0.96, atol=0.08)
    assert float(ds["median_abs_bias"].sel(estimator="ls").max()) < 0.4  # |mean of 10 N(0,1)| has median 0.21
    assert list(ds["parameter"].values) == ["p0", "p1", "mean"]
    np.testing.assert_allclose(loss.sel(parameter="mean"), loss.sel(parameter=["p0", "p1"]).mean("parameter"))


def test_a_biased_estimator_and_subsets_are_recorded():
    a, theta, c, crb1 = _toy(n=100)
    shrink = SweepEstimator(lambda y: np.tile(theta.mean(0), (len(y), 1)), max_samples=40, max_realizations=3)
    ds = evaluate_snr_sweep(c, theta, crb1, ["p0", "p1"], {"prior_mean": shrink}, snrs=SNRS, sigma=0.01,
                            realizations=5, seed=1, n_boot=50)
    assert int(ds["n_samples"].sel(estimator="prior_mean")) == 40
    assert int(ds["n_realizations"].sel(estimator="prior_mean")) == 3
    loss = ds["mean_loss"].sel(estimator="prior_mean", parameter="mean").values
    # a constant estimator's error is fixed, the CRB shrinks as 1/SNR^2: loss grows as SNR^2
    np.testing.assert_allclose(loss[1:] / loss[:-1], (np.array(SNRS[1:]) / SNRS[:-1]) ** 2, rtol=1e-9)
    assert float(ds["median_std"].sel(estimator="prior_mean").max()) == 0.0
    table = sweep_table(ds)
    assert len(table) == len(SNRS) * 3 and {"mean_loss", "mean_loss_lo", "median_std_hi"} <= set(table.columns)


def test_bad_inputs_are_named():
    a, theta, c, crb1 = _toy(n=5)
    with pytest.raises(ValueError, match="SNR must be > 0"):
        evaluate_snr_sweep(c, theta, crb1, ["p0", "p1"], {"x": SweepEstimator(lambda y: y.real[:, :2])},
                           snrs=[0.0], sigma=0.01, realizations=2, seed=0, n_boot=0)
    with pytest.raises(ValueError, match="returned shape"):
        evaluate_snr_sweep(c, theta, crb1, ["p0", "p1"], {"x": SweepEstimator(lambda y: y.real)},
                           snrs=[10.0], sigma=0.01, realizations=2, seed=0, n_boot=0)
