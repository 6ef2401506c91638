"""End to end: the workflow on config/test.yaml produces its small data sets.

One session-scoped fixture, ``e2e_run``, runs the workflow once (inputs from the local data folder,
``CRBNN_DATA_DIR``); every test inspects its outputs.  To check more of the DAG, extend
``E2E_TARGETS`` (or set it to ``["all"]``) and add tests that take ``e2e_run``.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from crbnn.dataset import read_dataset
from crbnn.sampling import TISSUE_PARAMETERS
from crbnn.sequence import load_sequence
from workflow_helpers import REPO, run_snakemake

pytestmark = pytest.mark.e2e
TEST_CONFIG = yaml.safe_load((REPO / "config" / "test.yaml").read_text())

#: Targets of the session's end-to-end run (paths relative to its working directory).
E2E_TARGETS = [
    "resources/sequence.h5",
    "resources/basis.h5",
    "resources/r2sl.h5",
    "resources/invivo/coefficients.nii.gz",
    "resources/invivo/mask.nii.gz",
    "results/simulate_dataset/train.h5",
    "results/simulate_dataset/val.h5",
    "results/simulate_dataset/test.h5",
]


@pytest.fixture(scope="session")
def e2e_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """Run the workflow once on config/test.yaml with inputs from ``data_dir``; return its directory."""
    work = tmp_path_factory.mktemp("e2e")
    overlay = work / "overlay.yaml"
    overlay.write_text(f"inputs:\n  data_dir: {str(data_dir)!r}\n")
    config = [str(REPO / "config" / "test.yaml"), str(overlay)]
    proc = run_snakemake(work, "--cores", "2", "--configfile", *config, "--show-failed-logs", *E2E_TARGETS)
    if proc.returncode != 0:
        pytest.fail(f"workflow failed (exit {proc.returncode}):\n{proc.stdout[-5000:]}\n{proc.stderr[-10000:]}")
    return work


def test_resources(e2e_run: Path) -> None:
    seq = load_sequence(e2e_run / "resources" / "sequence.h5")
    assert len(seq) == 1142 and seq.tr == pytest.approx(3.5e-3)
    with h5py.File(e2e_run / "resources" / "basis.h5") as f:
        assert f["u"].shape == (1142, TEST_CONFIG["basis"]["rank"])
        assert f.attrs["sequence_sha256"] == seq.sha256
    with h5py.File(e2e_run / "resources" / "r2sl.h5") as f:
        assert {"rho", "tau", "omega"} <= set(f)


def test_invivo_image(e2e_run: Path) -> None:
    from crbnn.io import read_nifti

    coef, aff = read_nifti(e2e_run / "resources" / "invivo" / "coefficients.nii.gz")
    mask, _ = read_nifti(e2e_run / "resources" / "invivo" / "mask.nii.gz")
    assert coef.shape == (175, 215, 1, 26) and coef.dtype == np.float32
    assert mask.shape == (175, 215, 1) and mask.dtype == np.uint8
    assert int(mask.sum()) == 37625 - 18674  # README of the inputs: background voxels are zero


@pytest.mark.parametrize("name", ["train", "val", "test"])
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
    # the basis keeps nearly all of the signal energy (inputs README: > 99.9 %)
    assert np.all(np.isfinite(data["coefficients"]))


def test_logs_and_benchmarks(e2e_run: Path) -> None:
    for rule in ("build_sequence", "build_basis", "sample_parameters", "simulate_shard", "merge_shards"):
        assert any((e2e_run / "results" / "logs" / rule).rglob("*.log")), rule
        assert any((e2e_run / "results" / "benchmarks" / rule).rglob("*.tsv")), rule
