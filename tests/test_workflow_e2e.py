"""End to end: the workflow on config/test.yaml produces its small data sets.

One session-scoped fixture, ``e2e_run``, runs the workflow once (inputs from the ``data_dir``
fixture: ``CRBNN_DATA_DIR`` or the user cache, see conftest.py); every test inspects its outputs.  To check more of the DAG, extend
``E2E_TARGETS`` (or set it to ``["all"]``) and add tests that take ``e2e_run``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from workflow_helpers import REPO, run_snakemake

from crbnn.common.parameters import TISSUE_PARAMETERS
from crbnn.data.datasets import read_dataset
from crbnn.data.sequence import load_sequence
from crbnn.report.manuscript import decide_pdf, latex_log_problems, unreferenced_labels

pytestmark = pytest.mark.e2e
#: recorded from a run of config/test.yaml (coarse R2sl grid of that config); a change means the
#: sampled parameters, the physics or the basis changed
EXPECTED_CRB_M0S_FINAL0 = 5.687311668810805  # first sample of the final test set (seed stream "final"), the paper regime
TEST_CONFIG = yaml.safe_load((REPO / "config" / "test.yaml").read_text())

#: Targets of the session's end-to-end run: the whole DAG (rule all), manuscript included.
E2E_TARGETS: list[str] = []


@pytest.fixture(scope="session")
def e2e_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """Run the workflow once on config/test.yaml with inputs from ``data_dir``; return its directory.

    ``CRBNN_E2E_DIR`` names a directory to run in (CI keeps it to build the HTML report from it);
    otherwise a temporary one.  A second invocation in the same directory must have nothing to do.
    """
    env_dir = os.environ.get("CRBNN_E2E_DIR")
    work = Path(env_dir) if env_dir else tmp_path_factory.mktemp("e2e")
    work.mkdir(parents=True, exist_ok=True)
    overlay = work / "overlay.yaml"
    overlay.write_text(f"inputs:\n  data_dir: {str(data_dir)!r}\n")
    config = [str(REPO / "config" / "test.yaml"), str(overlay)]
    proc = run_snakemake(work, "--cores", "2", *E2E_TARGETS, "--configfile", *config, "--show-failed-logs")
    if proc.returncode != 0:
        pytest.fail(f"workflow failed (exit {proc.returncode}):\n{proc.stdout[-5000:]}\n{proc.stderr[-10000:]}")
    again = run_snakemake(work, "--cores", "2", "-n", *E2E_TARGETS, "--configfile", *config)
    assert "Nothing to be done" in again.stdout + again.stderr, "a second run of a complete workflow must do nothing"
    return work


def test_changing_the_input_source_reruns_nothing(e2e_run: Path, data_dir: Path) -> None:
    """The inputs are sha256-pinned: another data_dir or a mirror must not make the run stale."""
    overlay = e2e_run / "overlay_source.yaml"
    overlay.write_text(f"inputs:\n  data_dir: {str(data_dir) + '/'!r}\n  mirror_url: http://127.0.0.1:9/x\n")
    proc = run_snakemake(e2e_run, "--cores", "1", "-n", *E2E_TARGETS, "--configfile",
                         str(REPO / "config" / "test.yaml"), str(overlay))
    assert "Nothing to be done" in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-3000:]


def test_resources(e2e_run: Path) -> None:
    seq = load_sequence(e2e_run / "resources" / "sequence.h5")
    assert len(seq) == 1142 and seq.tr == pytest.approx(3.5e-3)
    with h5py.File(e2e_run / "resources" / "basis.h5") as f:
        assert f["u"].shape == (1142, TEST_CONFIG["basis"]["rank"])
        assert f.attrs["sequence_sha256"] == seq.sha256
    with h5py.File(e2e_run / "resources" / "r2sl.h5") as f:
        assert {"rho", "tau", "omega"} <= set(f)


def test_invivo_image(e2e_run: Path) -> None:
    from crbnn.common.io import read_nifti

    coef, aff = read_nifti(e2e_run / "resources" / "invivo" / "coefficients.nii.gz")
    mask, _ = read_nifti(e2e_run / "resources" / "invivo" / "mask.nii.gz")
    assert coef.shape == (175, 215, 1, 26) and coef.dtype == np.float32
    assert mask.shape == (175, 215, 1) and mask.dtype == np.uint8
    assert int(mask.sum()) == 37625 - 18674  # README of the inputs: background voxels are zero


@pytest.mark.parametrize("name", ["train", "val", "dev", "final"])
def test_datasets(e2e_run: Path, name: str) -> None:
    data, attrs = read_dataset(e2e_run / "results" / "simulate_dataset" / f"{name}.h5")
    n = TEST_CONFIG["simulate"]["tables"][name]["n"]
    rank = TEST_CONFIG["basis"]["rank"]
    est, nui = TEST_CONFIG["model"]["estimated"], TEST_CONFIG["model"]["nuisance"]
    assert data["parameters"].shape == (n, len(TISSUE_PARAMETERS))
    assert data["coefficients"].shape == (n, rank) and data["coefficients"].dtype == np.complex128
    assert data["jacobian"].shape == (n, rank, len(est) + len(nui))
    assert data["crb"].shape == (n, len(est)) and np.all(data["crb"] > 0)
    assert attrs["parameter_names"] == list(TISSUE_PARAMETERS)
    assert attrs["estimated"] == est and attrs["nuisance"] == nui and attrs["rank"] == rank
    assert attrs["M0"] == 1.0 and attrs["sigma"] == 1.0 and attrs["parametrization"] == "paper"
    seq = load_sequence(e2e_run / "resources" / "sequence.h5")
    assert attrs["sequence_sha256"] == seq.sha256
    assert np.all(np.isfinite(data["coefficients"]))


def test_coefficients_are_the_compressed_signal(e2e_run: Path) -> None:
    """The stored coefficients are u^H s of the full simulated signal, and the basis keeps nearly all
    of its energy: ||u^H s||^2 / ||s||^2 was 0.981-0.998 on the first test samples of
    config/test.yaml (rank 13, public basis); a wrong basis, rank or conjugation drops it far below."""
    import torch

    from crbnn.data.basis import load_basis
    from crbnn.data.simulate import table_to_params
    from crbnn.physics.r2sl import R2slTable
    from crbnn.physics.signal import simulate_paper

    data, _ = read_dataset(e2e_run / "results" / "simulate_dataset" / "final.h5")
    seq = load_sequence(e2e_run / "resources" / "sequence.h5")
    u = load_basis(e2e_run / "resources" / "basis.h5").u
    r2sl = R2slTable.load(e2e_run / "resources" / "r2sl.h5")
    k = 4
    params = table_to_params(data["parameters"][:k], torch.device("cpu"))
    s, _ = simulate_paper(torch.as_tensor(seq.alpha), torch.as_tensor(seq.trf), seq.tr, params, r2sl=r2sl)
    s = s.numpy()
    c = s @ u.conj()
    np.testing.assert_allclose(c, data["coefficients"][:k], rtol=0, atol=1e-10 * np.abs(c).max())
    energy = (np.abs(c) ** 2).sum(axis=1) / (np.abs(s) ** 2).sum(axis=1)
    assert np.all(energy > 0.97) and np.all(energy <= 1 + 1e-12), energy


def test_logs_and_benchmarks(e2e_run: Path) -> None:
    for rule in ("build_sequence", "build_basis", "sample_parameters", "simulate_shard", "merge_shards"):
        assert any((e2e_run / "results" / "logs" / rule).rglob("*.log")), rule
        assert any((e2e_run / "results" / "benchmarks" / rule).rglob("*.tsv")), rule


def test_training_outputs(e2e_run: Path) -> None:
    for loss in TEST_CONFIG["train"]["losses"]:
        hist = (e2e_run / "results" / "train_network" / loss / "history.csv").read_text().splitlines()
        assert len(hist) >= 2 and "epoch" in hist[0]
        assert (e2e_run / "results" / "train_network" / loss / "model.pt").stat().st_size > 0
        for evaluation_set in ("dev", "final"):
            metrics = json.loads((e2e_run / "results" / "evaluate_network" / evaluation_set / f"{loss}.json").read_text())
            assert np.isfinite(metrics["crb_loss_mean"]) and set(metrics["crb_loss"]) == set(TEST_CONFIG["model"]["estimated"])


def test_evaluation_and_figures(e2e_run: Path) -> None:
    import xarray as xr

    for grid in TEST_CONFIG["grids"]["sets"]:
        ds = xr.open_dataset(e2e_run / "results" / "evaluate_grid" / f"{grid}.nc", engine="h5netcdf")
        assert "nlls" in [str(e) for e in ds["estimator"].values]
        ds.close()
    figs = {p.name for p in (e2e_run / "results" / "figures").glob("*.pdf")}
    assert any(f.startswith("learning_curves") for f in figs), figs
    assert any(f.startswith("grid_maps_bias") for f in figs), figs
    assert (e2e_run / "results" / "figures" / "summary_table.csv").exists()


def test_images_and_manuscript(e2e_run: Path) -> None:
    maps = list((e2e_run / "results" / "images").rglob("*.nii.gz"))
    assert maps, "no NIfTI maps"
    summary = json.loads((e2e_run / "results" / "summary.json").read_text())
    assert set(TEST_CONFIG["train"]["losses"]) <= set(summary["networks"])
    # every claim of the paper has its own verdict, in the three words, with criterion and numbers
    from crbnn.evaluate.claims import CLAIM_NAMES, VERDICTS

    for name in CLAIM_NAMES:
        claim = summary["claims"][name]
        assert claim["verdict"] in VERDICTS and claim["criterion"] and claim["reason"], (name, claim)
    assert summary["claims"]["line"].count(":") == len(CLAIM_NAMES)
    # the verdicts read the final test set; the development set is reported apart
    assert set(summary["development"]["networks"]) == set(TEST_CONFIG["train"]["losses"])
    assert summary["evidence"]["sweep"]["n_samples"]["crb"] == TEST_CONFIG["evaluate"]["snr_sweep"]["samples"]
    for evaluation_set in ("dev", "final"):
        assert (e2e_run / "results" / "evaluate_snr_sweep" / evaluation_set / "sweep.nc").exists()
    pdf = e2e_run / "results" / "manuscript" / "manuscript.pdf"
    ms = TEST_CONFIG["manuscript"]
    if decide_pdf(ms["enabled"], ms["engine"]).build:  # a TeX engine is installed (CI): the PDF is built
        assert pdf.read_bytes()[:4] == b"%PDF"
        # the PDF is complete: no undefined macro, reference or citation, every figure and table cited
        build = e2e_run / "results" / "manuscript" / "build"
        log = (build / "manuscript.log").read_text(errors="replace")
        assert not latex_log_problems(log), latex_log_problems(log)
        assert not unreferenced_labels([p.read_text() for p in build.glob("*.tex")])
        assert "Output written on manuscript.pdf" in log
    else:  # manuscript.enabled: auto without TeX: everything else, no PDF
        assert not pdf.exists()


def test_regression_number(e2e_run: Path) -> None:
    """One expected number: the CRB of m0s of the first final-test sample (seeded prior, physics, basis)."""
    data, _ = read_dataset(e2e_run / "results" / "simulate_dataset" / "final.h5")
    assert data["crb"][0, 0] == pytest.approx(EXPECTED_CRB_M0S_FINAL0, rel=1e-6)


# ------------------------------------------------------------------ another regime: m0s and T1 only
M0S_T1_CONFIG = yaml.safe_load((REPO / "config" / "test-m0s-T1.yaml").read_text())
#: Targets of the second run: the whole DAG and the manuscript's tables (its PDF is off there).
M0S_T1_TARGETS = ["all", "results/manuscript/numbers.tex"]


@pytest.fixture(scope="session")
def e2e_m0s_t1(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """Run the workflow once on config/test.yaml + config/test-m0s-T1.yaml (estimated: m0s, T1)."""
    work = tmp_path_factory.mktemp("e2e_m0s_t1")
    overlay = work / "overlay.yaml"
    overlay.write_text(f"inputs:\n  data_dir: {str(data_dir)!r}\n")
    config = [str(REPO / "config" / "test.yaml"), str(REPO / "config" / "test-m0s-T1.yaml"), str(overlay)]
    proc = run_snakemake(work, "--cores", "2", *M0S_T1_TARGETS, "--configfile", *config, "--show-failed-logs")
    if proc.returncode != 0:
        pytest.fail(f"workflow (m0s, T1) failed (exit {proc.returncode}):\n{proc.stdout[-5000:]}\n{proc.stderr[-10000:]}")
    return work


def test_another_regime_runs_end_to_end(e2e_m0s_t1: Path) -> None:
    """With model.estimated = [m0s, T1] (T2f a nuisance parameter) every stage follows the config:
    data sets, networks, images, figures, region tables, summary, verdicts, manuscript tables."""
    from crbnn.common.io import read_nifti
    from crbnn.evaluate.claims import CLAIM_NAMES, VERDICTS

    est, nui = M0S_T1_CONFIG["model"]["estimated"], M0S_T1_CONFIG["model"]["nuisance"]
    assert est == ["m0s", "T1"] and "T2f" in nui
    data, attrs = read_dataset(e2e_m0s_t1 / "results" / "simulate_dataset" / "final.h5")
    assert data["crb"].shape[1] == 2 and attrs["estimated"] == est and attrs["nuisance"] == nui
    for loss in M0S_T1_CONFIG["train"]["losses"]:
        metrics = json.loads((e2e_m0s_t1 / "results" / "evaluate_network" / "final" / f"{loss}.json").read_text())
        assert set(metrics["crb_loss"]) == set(est)
        maps = e2e_m0s_t1 / "results" / "images" / "invivo" / loss
        assert {p.name for p in maps.glob("sqrt_crb_*.nii.gz")} == {f"sqrt_crb_{p}.nii.gz" for p in est}
        assert not (maps / "T2f.nii.gz").exists()
        sqrt_crb = read_nifti(maps / "sqrt_crb_T1.nii.gz")[0]
        assert np.isfinite(sqrt_crb).any() and np.nanmin(sqrt_crb) > 0
    assert (e2e_m0s_t1 / "results" / "images" / "invivo" / "nlls" / "T2f.nii.gz").exists()  # fitted, a nuisance
    for image in ("vials", "brain"):
        rows = json.loads((e2e_m0s_t1 / "results" / "images" / image / "regions.json").read_text())["rows"]
        assert {r["parameter"] for r in rows if r.get("truth") is not None} == set(est)
    summary = json.loads((e2e_m0s_t1 / "results" / "summary.json").read_text())
    assert summary["config"]["estimated"] == est
    for name in CLAIM_NAMES:
        assert summary["claims"][name]["verdict"] in VERDICTS, (name, summary["claims"][name])
    manuscript = e2e_m0s_t1 / "results" / "manuscript"
    for table in ("phantom_tables.tex", "invivo_regions.tex"):
        text = (manuscript / table).read_text()
        assert "T_2^f" not in text, table  # no column of a parameter that is not estimated
        assert "T_1" in text or (table == "invivo_regions.tex" and "not computed" in text), table
    for image in M0S_T1_CONFIG.get("images", {}).get("images", TEST_CONFIG["images"]["images"]):
        assert (e2e_m0s_t1 / "results" / "figures" / f"maps_{image}.pdf").stat().st_size > 0, image
    figures = {p.name for p in (e2e_m0s_t1 / "results" / "figures").glob("*.pdf")}
    assert {f"grid_maps_bias_{g}.pdf" for g in TEST_CONFIG["grids"]["sets"]} <= figures, figures
