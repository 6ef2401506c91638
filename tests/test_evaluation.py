"""Tests of the grid evaluation: the statistics themselves, with estimators of known behaviour."""

from __future__ import annotations

import numpy as np

from crbnn.evaluate.grid import (
    EstimatorSpec,
    evaluate_grid,
    noisy_coefficients,
    point_statistics,
    read_netcdf,
    summarize_grid,
    write_netcdf,
)


def test_noise_model():
    c = np.ones((50, 4), complex) * (1 + 2j)
    y, m0 = noisy_coefficients(c, 400, 0.5, 0.01, seed=3)
    np.testing.assert_allclose(np.abs(m0), 0.5)
    noise = y - m0[..., None] * c[:, None, :]
    np.testing.assert_allclose(noise.real.std(), 0.01, rtol=0.02)
    np.testing.assert_allclose(noise.imag.std(), 0.01, rtol=0.02)
    assert abs(np.mean(np.exp(1j * np.angle(m0)))) < 0.05  # uniform phase
    y2, _ = noisy_coefficients(c, 400, 0.5, 0.01, seed=3)
    np.testing.assert_array_equal(y, y2)


def test_statistics_of_truth_plus_crb_noise():
    """truth + N(0, CRB): loss ~ 1, std/sqrt(CRB) ~ 1, bias ~ 0 within statistical error."""
    rng = np.random.default_rng(7)
    n, k, e = 64, 200, 3
    truth = rng.uniform(0.5, 2.0, (n, e))
    crb = rng.uniform(1e-4, 1e-2, (n, e))
    est = truth[:, None, :] + np.sqrt(crb)[:, None, :] * rng.standard_normal((n, k, e))
    s = point_statistics(est, truth, crb)
    m = n * k
    assert abs(s["normalized_loss"].mean() - 1) < 5 * np.sqrt(2 / m)
    assert abs(s["std_over_sqrt_crb"].mean() - 1) < 5 * np.sqrt(1 / (2 * m))
    assert abs(s["bias_over_sqrt_crb"].mean()) < 5 / np.sqrt(m)
    # per point, bias/sqrt(CRB) ~ N(0, 1/k)
    np.testing.assert_allclose(s["bias_over_sqrt_crb"].std(), 1 / np.sqrt(k), rtol=0.15)


def _linear_grid(shape=(4, 5), seed=0):
    """A linear toy 'simulation': c = B @ theta (theta = 3 of the 7 tissue columns), CRB from B."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    ax = [("m0s", np.linspace(0.05, 0.25, shape[0])), ("T1", np.linspace(0.7, 2.0, shape[1]))]
    mesh = np.meshgrid(ax[0][1], ax[1][1], indexing="ij")
    params = np.tile([0.1, 1.0, 0.07, 15.0, 12e-6, 0.0, 1.0], (n, 1))
    params[:, 0], params[:, 1] = mesh[0].ravel(), mesh[1].ravel()
    B = rng.standard_normal((6, 3)) + 1j * rng.standard_normal((6, 3))
    theta = params[:, :3]
    c = theta @ B.T
    crb = np.tile(np.diag(np.linalg.inv(np.real(B.conj().T @ B))), (n, 1))
    return c, params, crb, ax, B


def test_evaluate_grid_with_efficient_linear_estimator(tmp_path):
    """With zero phase, linear LS is the efficient unbiased estimator: the whole pipeline gives ~1."""
    c, params, crb, ax, B = _linear_grid()
    M0, sigma, K = 0.5, 0.05, 300
    pinv = np.linalg.inv(np.real(B.conj().T @ B))

    def linear_ls(y):
        return (np.real(y @ B.conj()) @ pinv.T) / M0

    def biased(y):
        return linear_ls(y) + 0.01

    ds = evaluate_grid(
        c, params, crb, ["m0s", "T1", "T2f"], ax,
        {"ls": linear_ls, "biased": EstimatorSpec(biased, max_realizations=50, stride=2)},
        realizations=K, M0_abs=M0, sigma=sigma, seed=11, random_phase=False,
        units={"m0s": "1", "T1": "s", "T2f": "s"},
    )
    assert ds["normalized_loss"].dims == ("estimator", "parameter", "m0s", "T1")
    ls = ds.sel(estimator="ls")
    m = 20 * K
    assert abs(float(ls["normalized_loss"].mean()) - 1) < 5 * np.sqrt(2 / m) * 3  # points correlated across params
    assert abs(float(ls["std_over_sqrt_crb"].mean()) - 1) < 0.05
    assert abs(float(ls["bias_over_sqrt_crb"].mean())) < 5 / np.sqrt(m) * 3
    np.testing.assert_allclose(ls["sqrt_crb"].values, np.sqrt(crb.T.reshape(3, 4, 5)) * sigma / M0)
    b = ds.sel(estimator="biased")
    assert int(b["n_realizations"]) == 50 and int(b["n_points"]) == 6
    assert np.isnan(b["bias"].values[:, 1, 0]).all() and np.isfinite(b["bias"].values[:, 0, 0]).all()
    np.testing.assert_allclose(ds["truth"].sel(parameter="T1").values[0], ax[1][1])

    path = tmp_path / "g.nc"
    write_netcdf(path, ds)
    back = read_netcdf(path)
    np.testing.assert_allclose(back["normalized_loss"].values, ds["normalized_loss"].values)
    table = summarize_grid(back)
    assert len(table) == 6 and set(table["estimator"]) == {"ls", "biased"}
    assert abs(table.query("estimator == 'ls'")["median_std_over_sqrt_crb"] - 1).max() < 0.1


def test_figures_render_deterministically(tmp_path):
    """Every evaluation figure renders from small synthetic data; PNG and PDF bytes are reproducible."""
    import pandas as pd

    from crbnn.evaluate.test_set import normalized_test_errors
    from crbnn.report.plots import plot_error_distribution, plot_grid_maps, plot_learning_curves, save_figure, set_style

    c, params, crb, ax, B = _linear_grid()
    pinv = np.linalg.inv(np.real(B.conj().T @ B))

    def ls(y):
        return (np.real(y @ B.conj()) @ pinv.T) / 0.5

    ds = evaluate_grid(c, params, crb, ["m0s", "T1", "T2f"], ax, {"nlls": ls, "crb": ls}, realizations=5,
                       M0_abs=0.5, sigma=0.05, seed=1, random_phase=False)
    m0 = np.full(20, 0.5 + 0j)
    test = normalized_test_errors(0.5 * c, m0, params[:, :3], crb, ["m0s", "T1", "T2f"], {"nlls": (ls, 10), "crb": (ls, 20)}, 0.05)
    assert np.isnan(test["normalized_error"].sel(estimator="nlls").values[10:]).all()
    hist = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [3.0, 2.0, 1.5], "val_crb_mean": [3.0, 2.0, 1.2],
                         **{f"val_crb_{p}": [3.0, 2.0, 1.1] for p in ("m0s", "T1", "T2f")}})
    set_style()
    digests = []
    for run in range(2):
        for name, fig in [("lc", plot_learning_curves({"crb": hist, "mse": hist * 1.1})),
                          ("bias", plot_grid_maps(ds, "bias")), ("std", plot_grid_maps(ds, "std_ratio")),
                          ("crb", plot_grid_maps(ds, "sqrt_crb")), ("err", plot_error_distribution(test))]:
            paths = [tmp_path / f"{name}{run}.png", tmp_path / f"{name}{run}.pdf"]
            save_figure(fig, paths, dpi=50)
            digests.append([p.read_bytes() for p in paths])
    assert digests[:5] == digests[5:]
    assert b"CreationDate" not in digests[0][1]
