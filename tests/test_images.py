"""Coefficient images: NIfTI round trip, masking of NaN/zero voxels, shape errors, sigma estimate,
NLLS recovery of a noise-free phantom (a handful of voxels, the public pulse train)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crbnn.common.io import read_nifti, write_nifti
from crbnn.images.maps import (
    ImageError,
    estimate_sigma,
    read_coefficient_image,
    select_voxels,
    write_maps,
)
from crbnn.images.regions import region_stats

torch.set_num_threads(1)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.int16])
def test_nifti_round_trip_keeps_affine_shape_dtype(tmp_path, dtype):
    aff = np.array([[0.9, 0.1, 0, -10], [0, 1.1, 0, 5], [0, 0, 3.0, 2], [0, 0, 0, 1]])
    x = (np.random.default_rng(1).random((5, 4, 2, 3)) * 100).astype(dtype)
    write_nifti(tmp_path / "x.nii.gz", x, aff)
    y, aff2 = read_nifti(tmp_path / "x.nii.gz")
    assert y.dtype == dtype and y.shape == x.shape and np.array_equal(x, y)
    assert np.allclose(aff, aff2, atol=1e-6)


def test_write_maps_keeps_affine_and_shape_nan_outside(tmp_path):
    aff = np.diag([2.0, 2.0, 4.0, 1.0])
    m = np.full((3, 4, 1), np.nan, np.float32)
    m[1, 1, 0] = 0.5
    write_maps(tmp_path / "est", {"T1": m}, aff, {"sigma": 1.0})
    y, a = read_nifti(tmp_path / "est" / "T1.nii.gz")
    assert y.shape == (3, 4, 1) and y.dtype == np.float32 and np.allclose(a, aff)
    assert np.isnan(y[0, 0, 0]) and y[1, 1, 0] == 0.5


def _image(tmp_path, r=2):
    x = np.zeros((4, 3, 1, 2 * r), np.float32)
    x[0, 0, 0] = np.arange(1, 2 * r + 1)
    x[1, 1, 0] = 1.0
    x[2, 2, 0, 1] = np.nan
    write_nifti(tmp_path / "c.nii.gz", x, np.diag([1.0, 1.0, 2.0, 1.0]))
    return tmp_path / "c.nii.gz"


def test_nan_and_zero_voxels_are_masked_not_fatal(tmp_path):
    img = read_coefficient_image(_image(tmp_path), rank=2)
    assert img.mask.sum() == 2 and img.n_invalid == 1 and not img.mask[2, 2, 0]
    assert img.coefficients[0, 0, 0].tolist() == [1 + 3j, 2 + 4j]
    assert np.all(np.isfinite(img.coefficients))


def test_wrong_dimensions_and_counts_are_clear_errors(tmp_path):
    p = _image(tmp_path)
    with pytest.raises(ImageError, match="R = 13"):
        read_coefficient_image(p, rank=13)
    write_nifti(tmp_path / "odd.nii.gz", np.ones((2, 2, 1, 3), np.float32))
    with pytest.raises(ImageError, match="odd|2R"):
        read_coefficient_image(tmp_path / "odd.nii.gz")
    write_nifti(tmp_path / "flat.nii.gz", np.ones((2, 2, 4), np.float32))
    with pytest.raises(ImageError, match="4-D"):
        read_coefficient_image(tmp_path / "flat.nii.gz")
    write_nifti(tmp_path / "m.nii.gz", np.ones((2, 2, 1), np.uint8))
    with pytest.raises(ImageError, match="mask shape"):
        read_coefficient_image(p, tmp_path / "m.nii.gz")


def test_mask_file_restricts_voxels(tmp_path):
    p = _image(tmp_path)
    m = np.zeros((4, 3, 1), np.uint8)
    m[0, 0, 0] = 1
    write_nifti(tmp_path / "m.nii.gz", m)
    img = read_coefficient_image(p, tmp_path / "m.nii.gz", rank=2)
    assert img.mask.sum() == 1 and img.mask[0, 0, 0]


def test_select_voxels_and_sigma_estimate():
    mask = np.ones((10, 10, 1), bool)
    assert select_voxels(mask, stride=5).sum() == 4
    assert select_voxels(mask, box=[2, 4, 0, 10]).sum() == 20
    rng = np.random.default_rng(3)
    cost = (0.2 * rng.standard_normal((20000, 17))) ** 2
    assert estimate_sigma(cost.sum(1), 17) == pytest.approx(0.2, rel=0.02)


def test_region_stats_error_against_truth():
    m = {"nlls": {"T1": np.array([1.0, 1.2, np.nan])}}
    rows = region_stats(m, {"a": np.array([True, True, True])}, truth={"T1": np.array([1.1, 1.1, 1.1])}, parameters=["T1"])
    assert rows[0]["n"] == 2 and rows[0]["error"] == pytest.approx(0.0) and rows[0]["truth"] == pytest.approx(1.1)


def test_nlls_recovers_noise_free_phantom(data_dir):
    """Noise-free brain phantom, 2 voxels (WM, GM): NLLS (start near the truth) within 1e-4 relative."""
    from crbnn.data.basis import load_basis
    from crbnn.data.sequence import load_sequence
    from crbnn.images.maps import CoefficientImage, nlls_maps
    from crbnn.images.phantom import make_phantom, simulate_phantom
    from crbnn.physics.r2sl import default_table

    seq = load_sequence(data_dir / "control_MT_v3p2_TR3p5ms_discretized.mat", tr=0.0035)
    basis = load_basis(data_dir / "basis_for_compress.mat", rank=13)
    s = {"size": [8, 8], "omega0_max": 60.0,
         "brain": {"WM": {"m0s": 0.13, "T1": 1.0, "T2f": 0.07}, "GM": {"m0s": 0.07, "T1": 1.4, "T2f": 0.08},
                   "CSF": {"m0s": 0.0, "T1": 2.4, "T2f": 0.2}}}
    ph = make_phantom("brain", s)
    r2sl = default_table()
    sel = np.zeros(ph.shape, bool)
    sel[tuple(np.argwhere(ph.labels == 1)[0])] = True
    sel[tuple(np.argwhere(ph.labels == 2)[0])] = True
    ph.labels[~sel] = 0  # simulate only the two voxels
    clean, _, _ = simulate_phantom(ph, seq, basis.u, snr=None, seed=0, r2sl=r2sl)
    img = CoefficientImage(clean, sel, ph.affine)
    settings = {"fit": ["m0s", "T1", "T2f", "Rex", "T2s", "omega0", "B1"],
                "nominal": {"m0s": 0.1, "T1": 1.2, "T2f": 0.075, "Rex": 12.0, "T2s": 1.25e-5, "omega0": 0.0, "B1": 1.0},
                "dictionary": {}, "max_iter": 60, "ftol": 1e-12, "xtol": 1e-12, "batch_size": 8}
    bounds = {"m0s": (0.0, 0.35), "T1": (0.4, 2.5), "T2f": (0.02, 0.25), "Rex": (2.0, 30.0), "T2s": (5e-6, 2.1e-5),
              "omega0": (-897.6, 897.6), "B1": (0.6, 1.3)}
    maps, info = nlls_maps(img, sel, seq, basis.u, settings, bounds, r2sl=r2sl, estimated=["m0s", "T1", "T2f"])
    for p in ("m0s", "T1", "T2f", "B1", "omega0"):
        est, true = maps[p][sel], ph.maps[p][sel]
        assert np.allclose(est, true, rtol=1e-4, atol=1e-6), (p, est, true)
    assert np.all(maps["residual"][sel] < 1e-5)
    assert np.all(np.isnan(maps["T1"][~sel])) and np.all(np.isfinite(maps["sqrt_crb_T1"][sel]))
    # value oracle of sqrt(CRB): crbnn.physics.crb of the compressed Jacobian of the signal at the estimate
    # (M0 from the maps, complex M0 and every other fitted parameter unknown), with the maps' sigma
    from crbnn.physics.crb import crb
    from crbnn.physics.signal import simulate_paper

    est = {p: maps[p][sel].astype(np.float64) for p in settings["fit"]}
    est["M0"] = maps["M0_abs"][sel].astype(np.float64) * np.exp(1j * maps["M0_phase"][sel].astype(np.float64))
    wrt = ("m0s", "T1", "T2f", "M0_re", "M0_im", "Rex", "T2s", "omega0", "B1")
    _, jac = simulate_paper(seq.alpha, seq.trf, seq.tr, {k: torch.as_tensor(v) for k, v in est.items()}, wrt=wrt, r2sl=r2sl)
    jc = torch.as_tensor(basis.u).conj().T @ jac  # [2, R, 9]: the coefficients' Jacobian
    expected = np.sqrt(crb(jc, sigma=info["sigma"]).numpy()[:, :3])
    for k, p in enumerate(("m0s", "T1", "T2f")):
        assert np.allclose(maps[f"sqrt_crb_{p}"][sel], expected[:, k], rtol=1e-4), (p, maps[f"sqrt_crb_{p}"][sel], expected[:, k])
    print(f"NLLS {info['seconds_per_voxel']:.2f} s/voxel")


def synthetic_tissue_image(seed: int = 0, shading: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients [40, 40, 1, 6] of four tissue stripes along x (CSF, PV, GM, WM, 10 columns each) with
    class prototypes of c_k / c_1 like the public slice's, 1 % noise, a smooth B1-like shading of every
    ratio along y (factor 1 + shading * y, y in [-1, 1]), and a random complex M0 per voxel; returns
    (coefficients, true class index [40, 40, 1])."""
    rng = np.random.default_rng(seed)
    proto = np.array([[1, -0.30, 0.25, -0.02, -0.06, -0.04],   # CSF
                      [1, -0.10, 0.05, -0.02, -0.03, 0.01],    # PV
                      [1, 0.03, -0.05, -0.02, -0.015, 0.045],  # GM
                      [1, 0.14, -0.085, -0.02, -0.01, 0.06]])  # WM
    label = np.repeat(np.arange(4), 10)[:, None, None] * np.ones((1, 40, 1), int)
    c = proto[label].astype(complex)
    c[..., 1:] *= 1 + shading * np.linspace(-1, 1, 40)[None, :, None, None]
    c[..., 1:] += 0.01 * (rng.standard_normal(c[..., 1:].shape) + 1j * rng.standard_normal(c[..., 1:].shape))
    m0 = rng.uniform(0.5, 2, label.shape) * np.exp(1j * rng.uniform(-np.pi, np.pi, label.shape))
    return c * m0[..., None], label


def test_tissue_regions_classify_the_coefficients_not_an_estimate():
    """WM and GM are found from the coefficient image alone: the regions match the true stripes,
    do not depend on M0 (which cancels in c_k / c_1), and bad settings are named."""
    from crbnn.images.regions import tissue_regions

    c, label = synthetic_tissue_image()
    mask = np.ones(label.shape, bool)
    r = tissue_regions(c, mask, seed=3)
    assert set(r) == {"WM", "GM"}
    for name, k in (("GM", 2), ("WM", 3)):
        true = label == k
        precision = (r[name] & true).sum() / r[name].sum()
        assert precision > 0.97 and (r[name] & true).sum() > 0.7 * true.sum(), (name, precision, r[name].sum())
    rng = np.random.default_rng(5)
    other_m0 = rng.uniform(0.2, 5, label.shape) * np.exp(1j * rng.uniform(-np.pi, np.pi, label.shape))
    r2 = tissue_regions(c * other_m0[..., None], mask, seed=3)
    assert all((r2[k] ^ r[k]).sum() <= 2 for k in r)  # M0 cancels (up to rounding at the threshold)
    eroded = tissue_regions(c, mask, seed=3, erode=1)
    assert eroded["WM"].sum() < r["WM"].sum() and not (eroded["WM"] & ~r["WM"]).any()
    with pytest.raises(ValueError, match="not among the classes"):
        tissue_regions(c, mask, report=("WM", "lesion"))
    with pytest.raises(ValueError, match="coefficient indices must lie in 2..6"):
        tissue_regions(c, mask, features=(2, 7))


def test_tissue_regions_bias_field_reduces_shading_errors():
    """One contrast, two tissues 0.1 apart and a linear shading of +-0.08 along y: the shaded ends of
    the two tissues overlap in value, so a plain mixture misclassifies them; fitting the polynomial
    bias field with the mixture classifies more voxels right."""
    from crbnn.images.regions import tissue_regions

    rng = np.random.default_rng(0)
    label = (np.arange(40)[:, None, None] >= 20) * np.ones((1, 40, 1), int)
    c = np.ones((40, 40, 1, 3), complex)
    c[..., 1] = np.where(label == 1, 0.1, 0.0) + 0.08 * np.linspace(-1, 1, 40)[None, :, None]
    c[..., 1:] += 0.01 * rng.standard_normal(c[..., 1:].shape)
    mask = np.ones(label.shape, bool)

    def accuracy(bias_order: int) -> float:
        r = tissue_regions(c, mask, ("dark", "bright"), ("dark", "bright"), features=(2,), min_probability=0.5,
                           seed=3, bias_order=bias_order)
        return float(((r["bright"] & (label == 1)).sum() + (r["dark"] & (label == 0)).sum()) / label.size)

    with_bias, without = accuracy(3), accuracy(0)
    assert with_bias > 0.85 and with_bias > without + 0.05, (with_bias, without)


def test_tissue_regions_restarts_make_the_classes_seed_independent():
    """Strong shading of every ratio (factor 1 +- 0.4): the best of several seeded starts finds the
    stripes whatever the seed."""
    from crbnn.images.regions import tissue_regions

    c, label = synthetic_tissue_image(shading=0.4)
    mask = np.ones(label.shape, bool)
    for seed in (3, 4):
        r = tissue_regions(c, mask, features=(2, 3), min_probability=0.5, seed=seed)
        assert (r["WM"] & (label == 3)).sum() / r["WM"].sum() > 0.95 and (r["GM"] & (label == 2)).sum() > 300


def test_reference_differences_paired_se_and_negative_count():
    from crbnn.images.regions import reference_differences

    rng = np.random.default_rng(3)
    ref = rng.uniform(0.05, 0.2, 400)
    net = ref + 0.01 + rng.normal(0, 0.02, 400)
    net[:7] = -0.01
    where = np.ones(400, bool)
    where[-100:] = False
    rows = reference_differences({"nlls": {"m0s": ref}, "net": {"m0s": net}}, {"R": where}, parameters=("m0s",), block=1)
    r = {x["estimator"]: x for x in rows}
    d = (net - ref)[where]
    assert r["net"]["n"] == 300 and r["net"]["n_negative"] == 7 and r["nlls"]["n_negative"] == 0
    # one-voxel blocks: the cluster standard error is SD / sqrt(n) up to the factor sqrt(n / (n - 1))
    assert np.isclose(r["net"]["difference_se"], d.std(ddof=0) / np.sqrt(299)) and r["net"]["n_blocks"] == 300
    assert np.isclose(r["net"]["difference"], d.mean())
    assert r["nlls"]["difference"] == 0.0 and np.isclose(r["net"]["sd"], net[where].std(ddof=1))


def test_block_standard_error_grows_with_spatial_correlation():
    """Smooth (correlated) differences: the block SE is several times SD/sqrt(n); white noise: about equal."""
    from crbnn.images.regions import block_standard_error

    rng = np.random.default_rng(4)
    where = np.ones((64, 64), bool)
    white = rng.normal(0, 1, (64, 64))
    se_white, blocks = block_standard_error(white, where, block=8)
    assert blocks == 64 and 0.7 < se_white / (white.std(ddof=1) / 64) < 1.4
    smooth = np.kron(rng.normal(0, 1, (8, 8)), np.ones((8, 8)))  # constant on 8 x 8 patches
    se_smooth, _ = block_standard_error(smooth, where, block=8)
    assert se_smooth / (smooth.std(ddof=1) / 64) > 5


def test_map_figure_m0s_from_zero_negative_shown_and_outlines():
    import matplotlib

    matplotlib.use("Agg")
    from crbnn.report.map_plots import NEGATIVE_COLOR, plot_map_panels

    rng = np.random.default_rng(0)
    base = {"m0s": rng.uniform(0.05, 0.2, (12, 12, 1)), "T1": rng.uniform(0.8, 1.6, (12, 12, 1)),
            "T2f": rng.uniform(0.05, 0.09, (12, 12, 1))}
    net = {k: v * 1.05 for k, v in base.items()}
    net["m0s"][0, :3] = -0.02
    region = np.zeros((12, 12, 1), bool)
    region[3:8, 3:8] = True
    fig = plot_map_panels({"nlls": base, "crb": net}, regions={"WM": region})
    axes = fig.axes
    assert [ax.get_title() for ax in axes[:2]] == ["NLLS", "CRB\nnetwork"]  # side by side
    assert axes[0].images[0].get_clim()[0] == 0.0 and axes[1].images[0].get_clim()[0] == 0.0  # m0s row from 0
    texts = [t.get_text() for ax in axes for t in ax.texts]
    assert "3 < 0" in texts  # the three negative network voxels are counted on the panel
    assert len(axes[0].collections) and not axes[1].collections  # region contours on the NLLS column only
    diff_clims = [ax.images[0].get_clim() for ax in axes if ax.images and ax.images[0].get_cmap().name == "RdBu_r"]
    assert diff_clims and all(np.isclose(lo, -hi) for lo, hi in diff_clims)
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert "WM (25 voxels)" in labels and NEGATIVE_COLOR
