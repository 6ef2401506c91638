"""``crbnn infer``: maps of a saved network on a NIfTI image; checks of R, basis hash, NaN voxels."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from crbnn.common.io import read_nifti, write_h5, write_nifti
from crbnn.data.basis import Basis
from crbnn.data.sequence import Sequence, save_sequence
from crbnn import cli
from crbnn.cli import DEFAULT_BOUNDS, DEFAULT_NOMINAL, build_parser, main
from crbnn.learn.model_file import save_model
from crbnn.learn.nets import EstimatorNet

torch.set_num_threads(1)
R = 3


@pytest.fixture()
def files(tmp_path):
    u = np.linalg.qr(np.random.default_rng(0).standard_normal((6, R)))[0].astype(np.complex128)
    basis = Basis(u, source="test")
    write_h5(tmp_path / "basis.h5", {"u": u}, {"sha256": basis.sha256, "rank": R, "source": "computed"})
    net = EstimatorNet([2 * R, 8, 3], out_offset=[0.1, 1.0, 0.07], out_scale=[0.05, 0.5, 0.03]).eval()
    net.meta = {"architecture": net.architecture(), "normalization": "first_coefficient", "estimated": ["m0s", "T1", "T2f"],
                "units": ["1", "s", "s"], "basis_sha256": basis.sha256, "sequence_sha256": "x", "rank": R, "loss": "crb"}
    save_model(net, tmp_path / "model.pt")
    x = np.random.default_rng(1).standard_normal((5, 4, 1, 2 * R)).astype(np.float32)
    x[0, 0, 0] = 0.0
    x[1, 0, 0, 2] = np.nan
    aff = np.diag([1.5, 1.5, 3.0, 1.0])
    write_nifti(tmp_path / "c.nii.gz", x, aff)
    return tmp_path, aff


def test_infer_writes_maps_nan_outside_mask(files):
    d, aff = files
    rc = main(["infer", "--model", str(d / "model.pt"), "--coefficients", str(d / "c.nii.gz"), "--out", str(d / "out"),
               "--basis", str(d / "basis.h5")])
    assert rc == 0
    t1, a = read_nifti(d / "out" / "T1.nii.gz")
    assert t1.shape == (5, 4, 1) and t1.dtype == np.float32 and np.allclose(a, aff)
    assert np.isnan(t1[0, 0, 0]) and np.isnan(t1[1, 0, 0]) and np.isfinite(t1).sum() == 18
    info = json.loads((d / "out" / "info.json").read_text())
    assert info["n_mask"] == 18 and info["n_invalid"] == 1


def test_wrong_coefficient_count_is_an_error(files, capsys):
    d, _ = files
    write_nifti(d / "c4.nii.gz", np.ones((2, 2, 1, 8), np.float32))
    rc = main(["infer", "--model", str(d / "model.pt"), "--coefficients", str(d / "c4.nii.gz"), "--out", str(d / "o")])
    assert rc == 2 and "R = 3" in capsys.readouterr().err and not (d / "o").exists()


def test_mismatched_basis_hash_is_an_error(files, capsys):
    d, _ = files
    u = np.linalg.qr(np.random.default_rng(9).standard_normal((6, R)))[0].astype(np.complex128)
    write_h5(d / "other.h5", {"u": u})
    rc = main(["infer", "--model", str(d / "model.pt"), "--coefficients", str(d / "c.nii.gz"), "--out", str(d / "o"),
               "--basis", str(d / "other.h5")])
    assert rc == 2 and "basis sha256" in capsys.readouterr().err


def test_wrong_dimensions_is_an_error(files, capsys):
    d, _ = files
    write_nifti(d / "flat.nii.gz", np.ones((2, 2, 6), np.float32))
    rc = main(["infer", "--model", str(d / "model.pt"), "--coefficients", str(d / "flat.nii.gz"), "--out", str(d / "o")])
    assert rc == 2 and "4-D" in capsys.readouterr().err


def test_python_dash_m_entry_point(files):
    d, _ = files
    r = subprocess.run([sys.executable, "-m", "crbnn", "infer", "--model", str(d / "model.pt"), "--coefficients",
                        str(d / "c.nii.gz"), "--out", str(d / "o2")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (d / "o2" / "m0s.nii.gz").exists()


NLLS_META = {"nominal": {"m0s": 0.1, "T1": 1.0, "T2f": 0.05, "Rex": 13.6, "T2s": 1.25e-5, "omega0": 5.0, "B1": 0.9},
             "bounds": {"m0s": [0.0, 0.3], "T1": [0.5, 2.0], "T2f": [0.02, 0.2], "omega0": [-800.0, 800.0],
                        "B1": [0.7, 1.2]}}


@pytest.mark.parametrize("stored", [True, False])
def test_infer_uses_the_nlls_settings_of_the_model_file(files, monkeypatch, caplog, stored):
    """sqrt(CRB)/residual use the nominal values and bounds in meta["nlls"]; an older model file
    without them falls back to DEFAULT_NOMINAL / DEFAULT_BOUNDS with a warning."""
    import crbnn.images.maps
    import crbnn.physics.r2sl

    d, _ = files
    seq = Sequence(np.linspace(0.5, 1.0, 6), np.full(6, 5e-4), 3.5e-3)
    save_sequence(seq, d / "seq.h5")
    blob = torch.load(d / "model.pt", weights_only=True)
    blob["meta"].update(sequence_sha256=seq.sha256, known={"Rex": 13.6, "T2s": 1.25e-5},
                        nuisance=["M0_re", "M0_im", "omega0", "B1"])
    if stored:
        blob["meta"]["nlls"] = NLLS_META
    torch.save(blob, d / "model.pt")
    seen = {}

    def fake_uncertainty_maps(image, maps, evaluated, sequence, u, nominal, bounds, sigma, r2sl=None, nuisance=(), estimated=()):
        seen.update(nominal=dict(nominal), bounds=dict(bounds), nuisance=tuple(nuisance))
        return {}, 1.0, "given"

    monkeypatch.setattr(crbnn.images.maps, "uncertainty_maps", fake_uncertainty_maps)
    monkeypatch.setattr(crbnn.physics.r2sl, "default_table", lambda: None)
    args = build_parser().parse_args(["infer", "--model", str(d / "model.pt"), "--coefficients", str(d / "c.nii.gz"),
                                      "--out", str(d / "out"), "--basis", str(d / "basis.h5"),
                                      "--sequence", str(d / "seq.h5"), "--sigma", "1.0"])
    with caplog.at_level("WARNING", logger="crbnn"):
        info = cli.infer(args)
    warned = [r for r in caplog.records if "defaults of crbnn infer" in r.getMessage()]
    assert seen["nuisance"] == ("M0_re", "M0_im", "omega0", "B1")
    if stored:
        assert seen["nominal"] == NLLS_META["nominal"] and not warned
        assert seen["bounds"] == {p: tuple(b) for p, b in NLLS_META["bounds"].items()}
        assert info["nuisance"] == {"Rex": 13.6, "T2s": 1.25e-5, "omega0": 5.0, "B1": 0.9}
    else:
        assert seen["nominal"] == DEFAULT_NOMINAL and seen["bounds"] == DEFAULT_BOUNDS
        assert len(warned) == 1 and "model.pt" in warned[0].getMessage()


def test_infer_sqrt_crb_maps_equal_the_crb_at_the_estimate(files):
    """Value oracle of the sqrt(CRB) maps of ``crbnn infer``: crbnn.physics.crb of the compressed
    Jacobian of the signal at each voxel's estimate (Rex, T2s, omega0, B1 known, complex M0 unknown:
    the best fit to the voxel), with the given sigma."""
    import h5py

    from crbnn.physics.crb import crb
    from crbnn.physics.r2sl import default_table
    from crbnn.physics.signal import simulate_paper

    d, _ = files
    seq = Sequence(np.linspace(0.5, 1.0, 6), np.full(6, 5e-4), 3.5e-3)
    save_sequence(seq, d / "seq.h5")
    blob = torch.load(d / "model.pt", weights_only=True)
    # R = 3 complex coefficients: 6 real measurements, so only complex M0 is nuisance (F must be regular)
    blob["meta"].update(sequence_sha256=seq.sha256, known={"Rex": 13.6, "T2s": 1.25e-5, "omega0": 5.0, "B1": 0.9},
                        nuisance=["M0_re", "M0_im"], nlls=NLLS_META)
    torch.save(blob, d / "model.pt")
    sigma = 0.5
    rc = main(["infer", "--model", str(d / "model.pt"), "--coefficients", str(d / "c.nii.gz"), "--out", str(d / "out"),
               "--basis", str(d / "basis.h5"), "--sequence", str(d / "seq.h5"), "--sigma", str(sigma)])
    assert rc == 0
    est = {p: read_nifti(d / "out" / f"{p}.nii.gz")[0].astype(np.float64) for p in ("m0s", "T1", "T2f")}
    sq = {p: read_nifti(d / "out" / f"sqrt_crb_{p}.nii.gz")[0] for p in ("m0s", "T1", "T2f")}
    b = NLLS_META["bounds"]
    inside = np.isfinite(est["T1"]) & (est["T2f"] < 0.999 * est["T1"])  # where the estimate needs no clipping
    for p in ("m0s", "T1", "T2f"):
        inside &= (est[p] > b[p][0]) & (est[p] < b[p][1])
    assert inside.sum() >= 3
    x = read_nifti(d / "c.nii.gz")[0].astype(np.float64)[inside]
    y = x[:, :R] + 1j * x[:, R:]
    with h5py.File(d / "basis.h5", "r") as f:
        u = np.asarray(f["u"][()])
    n = int(inside.sum())
    prm = {"m0s": est["m0s"][inside], "T1": est["T1"][inside], "T2f": est["T2f"][inside], "Rex": np.full(n, 13.6),
           "T2s": np.full(n, 1.25e-5), "omega0": np.full(n, 5.0), "B1": np.full(n, 0.9)}
    wrt = ("m0s", "T1", "T2f", "M0_re", "M0_im")
    table = default_table()
    s1, _ = simulate_paper(seq.alpha, seq.trf, seq.tr, {**prm, "M0": np.ones(n, complex)}, r2sl=table)
    g = s1.numpy() @ u.conj()  # [n, R] coefficients at M0 = 1 (c = U^H s)
    m0 = (g.conj() * y).sum(1) / (np.abs(g) ** 2).sum(1)  # the best complex M0 of each voxel
    _, jac = simulate_paper(seq.alpha, seq.trf, seq.tr, {**prm, "M0": m0}, wrt=wrt, r2sl=table)
    jc = torch.as_tensor(u).conj().T @ jac  # [n, R, 5]
    expected = np.sqrt(crb(jc, sigma=sigma).numpy()[:, :3])
    for k, p in enumerate(("m0s", "T1", "T2f")):
        np.testing.assert_allclose(sq[p][inside], expected[:, k], rtol=1e-4, err_msg=p)
