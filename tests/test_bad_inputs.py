"""Every bad input stops with a clear error at the first moment it can be known (issue 13).

One table per kind of input: the config (through the real ``crbnn.config.checks.validate_config``
that ``workflow/rules/common.smk`` calls, plus a few real ``snakemake -n`` runs), pulse-train files,
the build_sequence script, and ``crbnn infer`` (models, images, bases, arguments, output folders).
Each case asserts the exit status or exception, that the message names the offending key, file or
pulse, and that no output was left behind.  Also: a training job stopped by a signal writes its
checkpoint and resumes to the same weights.
"""

from __future__ import annotations

import copy
import json
import os
import runpy
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
import yaml
from workflow_helpers import REPO, run_snakemake

from crbnn.common.interrupt import Interrupted, stop_on_signals
from crbnn.common.io import write_h5, write_nifti
from crbnn.common.logs import ScriptArgs
from crbnn.config.checks import ConfigError, validate_config
from crbnn.data.basis import Basis
from crbnn.data.sequence import Sequence, SequenceError, load_sequence, save_sequence
from crbnn.images.cli import main
from crbnn.learn.training_data import read_training_data
from crbnn.learn.loop import train_network
from crbnn.learn.model_file import save_model
from crbnn.learn.nets import EstimatorNet
from crbnn.learn.train_settings import TrainSettings

torch.set_num_threads(1)
SCHEMAS = REPO / "workflow" / "schemas"
DATA_DIR = Path(os.environ.get("CRBNN_DATA_DIR", REPO.parent / "shared" / "data")).resolve()
GOOD_TRAIN = "# tr = 3.5 ms\nalpha_rad,trf_s\n3.141592653589793,0.0005\n0.5,0.0003\n1.0,0.0002\n"


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of ``patch`` into a copy of ``base`` (like Snakemake's --configfile overlays)."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ================================================================================ config
TEST_CONFIG = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
PLAIN = {"sequence": {"source": "file", "file": "train.csv"}, "basis": {"source": "computed"}}

# (id, config overlay, files written into the working directory, fragments the message must hold)
CONFIG_CASES: list[tuple[str, dict[str, Any], dict[str, str], list[str]]] = [
    ("prior-low-above-high", {"priors": {"parameters": {"T1": {"dist": "uniform", "low": 2.5, "high": 0.4}}}}, {},
     ["priors.parameters.T1", "low = 2.5 is not below high = 0.4"]),
    ("prior-low-equals-high", {"priors": {"parameters": {"m0s": {"low": 0.2, "high": 0.2}}}}, {},
     ["priors.parameters.m0s", "low = 0.2"]),
    ("loguniform-nonpositive", {"priors": {"parameters": {"T2f": {"dist": "loguniform", "low": 0.0, "high": 0.2}}}}, {},
     ["priors.parameters.T2f", "loguniform prior needs low > 0"]),
    ("reciprocal-through-zero", {"priors": {"parameters": {"T2f": {"dist": "uniform", "low": 0.0, "high": 50.0,
                                                                    "transform": "reciprocal"}}}}, {},
     ["priors.parameters.T2f", "reciprocal"]),
    ("estimated-and-nuisance", {"model": {"nuisance": ["M0_re", "M0_im", "T1", "omega0", "B1"]}}, {},
     ["model.estimated and model.nuisance", "'T1'"]),
    ("estimated-not-tissue", {"model": {"estimated": ["m0s", "M0_re"], "nuisance": ["M0_im"]}}, {},
     ["model.estimated", "M0_re"]),
    ("nlls-fit-lacks-estimated", {"nlls": {"fit": ["m0s", "T1"]}}, {}, ["nlls.fit", "unknown tissue parameters"]),
    ("known-parameter-not-fixed", {"priors": {"parameters": {"Rex": {"dist": "uniform", "low": 2.0, "high": 30.0}}}},
     {}, ["priors.parameters.Rex", "fixed"]),
    ("nlls-bounds-reversed", {"nlls": {"bounds": {"T1": [2.0, 1.0]}}}, {}, ["nlls.bounds.T1", "2.0", "1.0"]),
    ("nlls-bounds-outside-r2sl", {"nlls": {"bounds": {"B1": [0.5, 1.6]}}}, {}, ["nlls.bounds.B1", "r2sl.b1_max"]),
    ("evaluate-untrained-network", {"train": {"losses": ["mse"]}, "evaluate": {"estimators": ["nlls", "mse", "crb"]}},
     {}, ["evaluate.estimators", "crb"]),
    ("T2s-prior-above-r2sl", {"priors": {"parameters": {"T2s": {"dist": "fixed", "value": 3e-5}}}}, {},
     ["priors.parameters.T2s", "3e-05", "r2sl.t2s_max"]),
    ("T2s-prior-below-r2sl", {"priors": {"parameters": {"T2s": {"dist": "fixed", "value": 1e-6}}}}, {},
     ["priors.parameters.T2s", "r2sl.t2s_min"]),
    ("B1-prior-above-r2sl", {"priors": {"parameters": {"B1": {"dist": "uniform", "low": 0.5, "high": 1.6}}}}, {},
     ["priors.parameters.B1", "1.6", "r2sl.b1_max"]),
    ("grid-fixed-T2s-outside", {"grids": {"fixed": {"T2s": 4e-5}}}, {}, ["grids.fixed.T2s", "r2sl.t2s_max"]),
    ("grid-axis-B1-outside", {"grids": {"sets": {"b1": {"axes": {"B1": {"start": 0.5, "stop": 2.0, "num": 3}},
                                                        "realizations": 2}}}}, {},
     ["grids.sets.b1.axes.B1", "r2sl.b1_max"]),
    ("nlls-dictionary-T2s-outside", {"nlls": {"dictionary": {"T2s": {"start": 1e-6, "stop": 2e-5, "num": 3}}}}, {},
     ["nlls.dictionary.T2s", "r2sl.t2s_min"]),
    ("phantom-b1-outside", {"phantom": {"b1_range": [0.8, 1.5]}}, {}, ["phantom.b1_range", "1.5", "r2sl.b1_max"]),
    ("phantom-region-T2s-outside", {"phantom": {"brain": {"WM": {"m0s": 0.1, "T1": 1.0, "T2f": 0.07, "T2s": 5e-5}}}},
     {}, ["phantom.brain.WM.T2s", "r2sl.t2s_max"]),
    ("phantom-region-T2f-above-T1", {"phantom": {"vials": {"vials": [{"name": "V1", "m0s": 0.0, "T1": 0.1,
                                                                       "T2f": 0.2}]}}}, {},
     ["phantom.vials.vials[0]", "T2f = 0.2 s is not below T1 = 0.1 s"]),
    ("r2sl-trf-range-reversed", {"r2sl": {"trf_min": 6e-4}}, {}, ["r2sl.trf_min", "r2sl.trf_max"]),
    ("schema-wrong-type", {"sequence": {"tr": "fast"}}, {}, ["sequence.tr", "fast"]),
    ("schema-unknown-key", {"basis": {"rnak": 13}}, {}, ["basis", "rnak"]),
    ("schema-out-of-range", {"basis": {"rank": 0}}, {}, ["basis.rank", "minimum"]),
    ("schema-unknown-section", {"no_such_section": {}}, {}, ["no_such_section"]),
    ("file-train-with-public-basis", {"sequence": {"source": "file", "file": "train.csv"}}, {"train.csv": GOOD_TRAIN},
     ["basis.source", "computed"]),
    ("train-file-missing", PLAIN, {}, ["sequence.file", "train.csv", "not found"]),
    ("tr-disagrees-with-config", merge(PLAIN, {"sequence": {"tr": 0.0035}}),
     {"train.csv": GOOD_TRAIN.replace("3.5 ms", "4.5 ms")},
     ["sequence.file", "train.csv", "TR = 0.0045 s", "sequence.tr = 0.0035 s"]),
    ("tr-missing", PLAIN, {"train.csv": GOOD_TRAIN.replace("# tr = 3.5 ms\n", "# my own train\n")},
     ["sequence.file", "train.csv", "TR is required"]),
    ("tr-unreadable-unit", PLAIN, {"train.csv": GOOD_TRAIN.replace("3.5 ms", "3.5 us")},
     ["train.csv:1", "cannot read TR", "3.5 us"]),
    ("tr-without-unit-too-long", PLAIN, {"train.csv": GOOD_TRAIN.replace("3.5 ms", "3.5")},
     ["train.csv:1", "without a unit"]),
    ("tr-twice", PLAIN, {"train.csv": "# tr = 3.5 ms\n" + GOOD_TRAIN}, ["train.csv:2", "second TR line"]),
    ("pulse-outside-r2sl-omega", PLAIN, {"train.csv": GOOD_TRAIN + "3.0,0.0001\n"},
     ["sequence.file", "train.csv", "pulse(s) [4]", "alpha 3 rad", "TRF 0.0001 s", "30000", "r2sl.omega1_max"]),
    ("pulse-trf-below-r2sl", PLAIN, {"train.csv": GOOD_TRAIN + "0.001,0.00005\n"},
     ["train.csv", "pulse(s) [4]", "5e-05", "[r2sl.trf_min, r2sl.trf_max] = [0.0001, 0.0005]"]),
    ("pulse-trf-nan", PLAIN, {"train.csv": GOOD_TRAIN + "0.5,nan\n"}, ["train.csv", "TRF has NaN", "[4]"]),
    ("pulse-longer-than-tr", PLAIN, {"train.csv": GOOD_TRAIN.replace("3.5 ms", "0.25 ms")},
     ["train.csv", "TR = 0.00025 s is shorter than pulse(s) [1, 2]"]),
    ("pulse-negative-alpha", PLAIN, {"train.csv": GOOD_TRAIN + "-0.5,0.0003\n"}, ["train.csv", "flip angles", "[4]"]),
    ("pulse-one-column", PLAIN, {"train.csv": GOOD_TRAIN + "0.5\n"}, ["train.csv:6", "two columns"]),
    ("pulse-not-a-number", PLAIN, {"train.csv": GOOD_TRAIN + "0.5,fast\n"}, ["train.csv:6", "not a number"]),
    ("train-empty", PLAIN, {"train.csv": "# tr = 3.5 ms\nalpha_rad,trf_s\n"}, ["train.csv", "empty pulse train"]),
    ("train-unknown-format", merge(PLAIN, {"sequence": {"file": "train.xlsx"}}), {"train.xlsx": "x"},
     ["train.xlsx", "unknown pulse-train format"]),
    ("train-h5-without-datasets", merge(PLAIN, {"sequence": {"file": "train.h5"}}), {"train.h5": "<h5 without alpha>"},
     ["train.h5", "alpha"]),
]


def _write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        if text == "<h5 without alpha>":
            with h5py.File(folder / name, "w") as f:
                f["trf"] = np.full(3, 3e-4)
                f.attrs["tr"] = 3.5e-3
        else:
            (folder / name).write_text(text)


@pytest.mark.parametrize(("overlay", "files", "fragments"), [c[1:] for c in CONFIG_CASES],
                         ids=[c[0] for c in CONFIG_CASES])
def test_bad_config(tmp_path: Path, overlay: dict[str, Any], files: dict[str, str], fragments: list[str]) -> None:
    _write(tmp_path, files)
    before = listing(tmp_path)
    with pytest.raises(ConfigError) as err:
        validate_config(merge(TEST_CONFIG, overlay), SCHEMAS, base=tmp_path)
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert listing(tmp_path) == before  # nothing written


def test_public_train_against_a_narrowed_grid(data_dir: Path, tmp_path: Path) -> None:
    """The public train is checked at parse time too once its file is at hand (inputs.data_dir)."""
    cfg = merge(TEST_CONFIG, {"inputs": {"data_dir": str(data_dir)}, "r2sl": {"omega1_max": 5000.0}})
    with pytest.raises(ConfigError, match=r"^r2sl: .*control_MT_v3p2_TR3p5ms_discretized\.mat: pulse\(s\) \[1\] .*alpha 3.14159 rad"):
        validate_config(cfg, SCHEMAS, base=tmp_path)


@pytest.mark.parametrize(
    ("overlay", "files", "tr"),
    [
        ({}, {}, 3.5e-3),  # public train: 3.5 ms
        (PLAIN, {"train.csv": GOOD_TRAIN.replace("3.5 ms", "4.5 ms")}, 4.5e-3),  # the file's TR
        (merge(PLAIN, {"sequence": {"tr": 0.0045}}), {"train.csv": GOOD_TRAIN.replace("3.5 ms", "4.5ms")}, 4.5e-3),
        (merge(PLAIN, {"sequence": {"tr": 0.004}}), {"train.csv": "alpha_rad,trf_s\n1.0,0.0003\n"}, 4e-3),
    ],
    ids=["public", "file-tr", "explicit-agrees", "explicit-for-file-without-tr"],
)
def test_good_configs_resolve_tr(tmp_path: Path, overlay: dict[str, Any], files: dict[str, str], tr: float) -> None:
    _write(tmp_path, files)
    cfg = merge(TEST_CONFIG, overlay)
    assert validate_config(cfg, SCHEMAS, base=tmp_path) == pytest.approx(tr, rel=1e-12)
    assert cfg["basis"]["rank"] == 13  # defaults filled in


def test_shipped_configs_pass(tmp_path: Path) -> None:
    load = lambda name: yaml.safe_load((REPO / "config" / name).read_text())  # noqa: E731
    for name in ("config.yaml", "test.yaml", "paper.yaml", "full-nuisance.yaml"):
        cfg = merge(load("config.yaml"), load(name))  # full-nuisance.yaml is an overlay
        assert validate_config(cfg, SCHEMAS, base=tmp_path) == 3.5e-3, name


# A few real dry runs: the same checks stop `snakemake -n` at parse time, before any job.
DRY_RUNS = [
    ("prior-low-above-high", "priors:\n  parameters:\n    T1: {dist: uniform, low: 2.5, high: 0.4}\n", {},
     ["invalid config at priors.parameters.T1", "low = 2.5 is not below high = 0.4"]),
    ("tr-4.5ms-vs-explicit", "sequence: {source: file, file: train.csv, tr: 0.0035}\nbasis: {source: computed}\n",
     {"train.csv": GOOD_TRAIN.replace("3.5 ms", "4.5 ms")},
     ["invalid config at sequence.file", "train.csv", "TR = 0.0045 s", "sequence.tr = 0.0035 s"]),
]


@pytest.mark.parametrize(("overlay", "files", "fragments"), [c[1:] for c in DRY_RUNS], ids=[c[0] for c in DRY_RUNS])
def test_bad_config_dry_run(tmp_path: Path, overlay: str, files: dict[str, str], fragments: list[str]) -> None:
    _write(tmp_path, files)
    (tmp_path / "bad.yaml").write_text(overlay)
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / "test.yaml"), "bad.yaml", timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    for fragment in fragments:
        assert fragment in out, (fragment, out[-2000:])
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


def test_plain_train_with_its_own_tr_is_used(tmp_path: Path) -> None:
    """`# tr = 4.5 ms` is used (formerly read as a comment and replaced by 3.5 ms): a real build_sequence job."""
    (tmp_path / "train.csv").write_text(GOOD_TRAIN.replace("3.5 ms", "4.5 ms"))
    (tmp_path / "o.yaml").write_text("sequence: {source: file, file: train.csv}\nbasis: {source: computed}\n")
    proc = run_snakemake(tmp_path, "resources/sequence.h5", "--cores", "1", "--configfile",
                         str(REPO / "config" / "test.yaml"), "o.yaml", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert load_sequence(tmp_path / "resources" / "sequence.h5").tr == 4.5e-3


# ================================================================================ build_sequence
def test_build_sequence_names_the_pulse_outside_the_grid(tmp_path: Path) -> None:
    """The script checks too (runs without Snakemake, or when the file changed after parsing)."""
    src = tmp_path / "train.csv"
    src.write_text(GOOD_TRAIN + "3.0,0.0001\n")
    out = tmp_path / "resources" / "sequence.h5"
    script = runpy.run_path(str(REPO / "workflow" / "scripts" / "build_sequence.py"))["main"]
    grid = {"trf_min": 1e-4, "trf_max": 5e-4, "omega1_max": np.pi / 5e-4}
    with pytest.raises(SequenceError, match=r"train\.csv: pulse\(s\) \[4\] lie outside the R2sl grid.*alpha 3 rad"):
        script(ScriptArgs(input={"source": str(src)}, output={"0": str(out)}, params={"tr": None, "r2sl": grid},
                          log=[str(tmp_path / "log.txt")]))
    assert not out.parent.exists() or not any(out.parent.iterdir())


# ================================================================================ crbnn infer
R = 3


@pytest.fixture()
def cli(tmp_path: Path) -> Path:
    """A tiny model (R = 3) with its basis, pulse train and a coefficient image."""
    u = np.linalg.qr(np.random.default_rng(0).standard_normal((4, R)))[0].astype(np.complex128)
    basis = Basis(u, source="test")
    write_h5(tmp_path / "basis.h5", {"u": u}, {"sha256": basis.sha256, "rank": R, "source": "computed"})
    seq = Sequence(np.array([np.pi, 0.5, 0.4, 0.3]), np.array([5e-4, 3e-4, 3e-4, 3e-4]), 3.5e-3)
    save_sequence(seq, tmp_path / "sequence.h5")
    net = EstimatorNet([2 * R, 8, 3], out_offset=[0.1, 1.0, 0.07], out_scale=[0.05, 0.5, 0.03]).eval()
    net.meta = {"architecture": net.architecture(), "normalization": "first_coefficient",
                "estimated": ["m0s", "T1", "T2f"], "units": ["1", "s", "s"], "basis_sha256": basis.sha256,
                "sequence_sha256": seq.sha256, "rank": R, "loss": "crb"}
    save_model(net, tmp_path / "model.pt")
    write_nifti(tmp_path / "c.nii.gz", np.random.default_rng(1).standard_normal((4, 3, 1, 2 * R)).astype(np.float32))
    return tmp_path


def _bad_model(kind: str) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        p = d / f"bad_{kind}.pt"
        if kind == "truncated":
            p.write_bytes((d / "model.pt").read_bytes()[:300])
        elif kind == "text":
            p.write_text("this is not a model\n")
        elif kind == "hdf5":
            write_h5(p, {"u": np.zeros(3)})
        elif kind == "empty":
            p.write_bytes(b"")
        elif kind == "no-meta":
            torch.save({"state_dict": {}}, p)
        elif kind == "full-pickle":
            torch.save(torch.nn.Linear(2, 2), p)
        elif kind == "meta-lacks-architecture":
            torch.save({"state_dict": {}, "meta": {"estimated": ["m0s"], "normalization": "l2"}}, p)
        elif kind == "wrong-weights":
            blob = torch.load(d / "model.pt", weights_only=True)
            blob["meta"]["architecture"]["widths"] = [2 * R, 5, 3]
            torch.save(blob, p)
        return p

    return make


def _args(d: Path, **kw: str | None) -> list[str]:
    opts = {"model": str(d / "model.pt"), "coefficients": str(d / "c.nii.gz"), "out": str(d / "out"), **kw}
    argv = ["infer"]
    for key, value in opts.items():
        if value is not None:
            argv += [f"--{key}", value] if value != "" else [f"--{key}"]
    return argv


def _image(kind: str) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        p = d / f"img_{kind}.nii.gz"
        if kind == "3d":
            write_nifti(p, np.ones((4, 3, 2 * R), np.float32))
        elif kind == "wrong-R":
            write_nifti(p, np.ones((4, 3, 1, 8), np.float32))
        elif kind == "odd-volumes":
            write_nifti(p, np.ones((4, 3, 1, 5), np.float32))
        elif kind == "text":
            p.write_text("not an image")
        return p

    return make


# (id, files to make -> extra arguments, fragments of the one-line message)
CLI_CASES: list[tuple[str, Callable[[Path], dict[str, str | None]], list[str]]] = [
    *[(f"model-{k}", (lambda k: lambda d: {"model": str(_bad_model(k)(d))})(k), [f"bad_{k}.pt", what])
      for k, what in [("truncated", "truncated torch archive"), ("text", "a text file"), ("hdf5", "an HDF5 file"),
                      ("empty", "empty file"), ("no-meta", "not a crbnn model"),
                      ("full-pickle", "objects other than tensors"), ("meta-lacks-architecture", "architecture"),
                      ("wrong-weights", "do not fit the architecture")]],
    ("model-missing", lambda d: {"model": str(d / "nope.pt")}, ["nope.pt", "not found"]),
    ("image-missing", lambda d: {"coefficients": str(d / "nope.nii.gz")}, ["nope.nii.gz", "not found"]),
    ("image-3d", lambda d: {"coefficients": str(_image("3d")(d))}, ["img_3d.nii.gz", "4-D"]),
    ("image-wrong-R", lambda d: {"coefficients": str(_image("wrong-R")(d))}, ["img_wrong-R.nii.gz", "R = 3"]),
    ("image-odd-volumes", lambda d: {"coefficients": str(_image("odd-volumes")(d))}, ["img_odd-volumes", "2R"]),
    ("image-not-nifti", lambda d: {"coefficients": str(_image("text")(d))}, ["img_text.nii.gz", "cannot read"]),
    ("mask-wrong-shape", lambda d: (write_nifti(d / "m.nii.gz", np.ones((2, 2, 1), np.uint8)),
                                    {"mask": str(d / "m.nii.gz")})[1], ["m.nii.gz", "mask shape"]),
    ("basis-other-hash", lambda d: (write_h5(d / "b2.h5", {"u": np.eye(4, R, dtype=complex)}),
                                    {"basis": str(d / "b2.h5")})[1], ["b2.h5: basis sha256"]),
    ("basis-too-few-columns", lambda d: (write_h5(d / "b1.h5", {"u": np.eye(4, 1, dtype=complex)}),
                                         {"basis": str(d / "b1.h5")})[1], ["b1.h5", "R = 3"]),
    ("basis-not-a-basis", lambda d: (write_h5(d / "b0.h5", {"v": np.zeros(2)}),
                                     {"basis": str(d / "b0.h5")})[1], ["b0.h5", "'u'"]),
    ("sequence-other-hash", lambda d: (save_sequence(Sequence(np.ones(4), np.full(4, 3e-4), 4e-3), d / "s2.h5"),
                                       {"basis": str(d / "basis.h5"), "sequence": str(d / "s2.h5")})[1],
     ["s2.h5", "sha256"]),
    ("out-holds-maps", lambda d: ((d / "out").mkdir(), (d / "out" / "m0s.nii.gz").write_text("old"), {})[-1],
     ["out", "already holds 1 file", "--overwrite"]),
    ("out-foreign-file-with-overwrite", lambda d: ((d / "out").mkdir(), (d / "out" / "notes.txt").write_text("mine"),
                                                   {"overwrite": ""})[-1],
     ["out", "notes.txt", "did not write"]),
    ("out-is-a-file", lambda d: ((d / "out").write_text("x"), {})[-1], ["out", "not a folder"]),
]


@pytest.mark.parametrize(("make", "fragments"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_bad_infer_inputs(cli: Path, capsys: pytest.CaptureFixture[str], make: Callable[[Path], dict[str, str | None]],
                          fragments: list[str]) -> None:
    extra = make(cli)
    before = {p: p.read_bytes() for p in (cli / "out").rglob("*")} if (cli / "out").is_dir() else None
    out_was_file = (cli / "out").is_file()
    rc = main(_args(cli, **extra))
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("crbnn infer: error: "), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert "weights_only=False" not in err and "Traceback" not in err
    if before is None and not out_was_file:
        assert not (cli / "out").exists()  # nothing written
    elif before is not None:
        assert {p: p.read_bytes() for p in (cli / "out").rglob("*")} == before  # nothing removed or changed


ARG_CASES = [
    ("stride-zero", {"stride": "0"}, "--stride"),
    ("sigma-negative", {"sigma": "-1"}, "--sigma"),
    ("sigma-not-a-number", {"sigma": "fast"}, "--sigma"),
    ("box-empty", {"box": None, "_box": "3 1 0 2"}, "--box"),
    ("threads-zero", {"threads": "0"}, "--threads"),
    ("sequence-without-basis", {"sequence": "seq.h5"}, "--sequence"),
    ("model-missing-option", {"model": None}, "--model"),
]


@pytest.mark.parametrize(("opts", "fragment"), [c[1:] for c in ARG_CASES], ids=[c[0] for c in ARG_CASES])
def test_bad_infer_arguments(cli: Path, capsys: pytest.CaptureFixture[str], opts: dict[str, str | None],
                             fragment: str) -> None:
    opts = dict(opts)
    box = opts.pop("_box", None)
    argv = _args(cli, **opts) + (["--box", *box.split()] if box else [])
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert fragment in capsys.readouterr().err
    assert not (cli / "out").exists()


def test_overwrite_replaces_only_earlier_outputs(cli: Path) -> None:
    """--overwrite removes an earlier run's maps that this run does not write (here its residual map)."""
    assert main(_args(cli)) == 0
    info = json.loads((cli / "out" / "info.json").read_text())
    assert info["files"] == ["T1.nii.gz", "T2f.nii.gz", "m0s.nii.gz"]
    # an earlier run with --basis/--sequence also wrote a residual map (listed in its manifest)
    (cli / "out" / "residual.nii.gz").write_bytes((cli / "out" / "T1.nii.gz").read_bytes())
    (cli / "out" / "info.json").write_text(json.dumps({**info, "files": [*info["files"], "residual.nii.gz"]}))
    assert main(_args(cli)) == 2  # refused without --overwrite, nothing changed
    assert (cli / "out" / "residual.nii.gz").exists()
    assert main(_args(cli, overwrite="")) == 0
    files = sorted(p.name for p in (cli / "out").iterdir())
    assert files == ["T1.nii.gz", "T2f.nii.gz", "info.json", "m0s.nii.gz"]
    assert json.loads((cli / "out" / "info.json").read_text())["files"] == ["T1.nii.gz", "T2f.nii.gz", "m0s.nii.gz"]


def test_bad_model_with_overwrite_keeps_earlier_outputs(cli: Path) -> None:
    assert main(_args(cli)) == 0
    before = sorted(p.name for p in (cli / "out").iterdir())
    assert main(_args(cli, model=str(_bad_model("text")(cli)), overwrite="")) == 2
    assert sorted(p.name for p in (cli / "out").iterdir()) == before


# ================================================================================ training signals
def _toy_data(path: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    params = np.column_stack([rng.uniform([0.0, 0.6, 0.03], [0.3, 2.0, 0.15], size=(n, 3)), np.ones((n, 4))])
    a = np.random.default_rng(7).normal(size=(4, 3)) + 1j
    coeff = 1.0 + params[:, :3] @ a.T
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("parameters", data=params)
        ds.attrs["names"] = ["m0s", "T1", "T2f", "Rex", "T2s", "omega0", "B1"]
        f["coefficients"] = coeff.astype(np.complex128)
        f.create_dataset("crb", data=np.full((n, 3), 1e-2)).attrs["names"] = ["m0s", "T1", "T2f"]
        f.attrs.update({"sequence_sha256": "s" * 64, "basis_sha256": "b" * 64, "rank": 4,
                        "estimated": ["m0s", "T1", "T2f"]})


def test_sigterm_writes_checkpoint_and_resume_equals_uninterrupted(tmp_path: Path) -> None:
    _toy_data(tmp_path / "train.h5", 256, 0)
    _toy_data(tmp_path / "val.h5", 64, 1)
    train, val = read_training_data(tmp_path / "train.h5"), read_training_data(tmp_path / "val.h5")
    s = TrainSettings.from_dict({"epochs": 4, "batch_size": 64, "checkpoint_every": 10, "network": {"preset": "tiny"},
                                 "normalization": "first_coefficient", "lr_step_epochs": 2})
    ref, _ = train_network(train, val, s, "mse")
    ckpt = tmp_path / "checkpoints"
    before = signal.getsignal(signal.SIGTERM)

    def signal_after_2(epoch: int) -> None:
        if epoch == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # a real signal, handled by crbnn.common.interrupt

    with stop_on_signals() as stop, pytest.raises(Interrupted, match=r"after epoch 3/4.*rerun to resume"):
        train_network(train, val, s, "mse", checkpoint_dir=ckpt, on_epoch_end=signal_after_2, should_stop=stop)
    assert stop.name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before  # handler restored
    assert (ckpt / "last.pt").exists() and not list(ckpt.glob("*.tmp"))
    assert torch.load(ckpt / "last.pt", weights_only=True)["epoch"] == 3
    resumed, hist = train_network(train, val, s, "mse", checkpoint_dir=ckpt)
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    for key, value in ref.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_failed_checkpoint_write_leaves_no_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _toy_data(tmp_path / "train.h5", 64, 0)
    data = read_training_data(tmp_path / "train.h5")
    s = TrainSettings.from_dict({"epochs": 1, "batch_size": 32, "network": {"preset": "tiny"}})

    def failing_save(obj: Any, f: Any) -> None:
        Path(f).write_bytes(b"")  # what a full disk leaves
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        train_network(data, data, s, "mse", checkpoint_dir=tmp_path / "ck")
    assert listing(tmp_path / "ck") == []


def test_resumed_training_job_appends_to_its_log(tmp_path: Path) -> None:
    _toy_data(tmp_path / "train.h5", 64, 0)
    out = tmp_path / "crb"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / ".last.pt.abc.tmp").write_bytes(b"")  # left by a SIGKILL
    log = tmp_path / "train.log"
    log.write_text("first attempt, killed\n")
    args = ScriptArgs(input={"train": str(tmp_path / "train.h5"), "val": str(tmp_path / "train.h5")},
                      output={"model": str(out / "model.pt"), "history": str(out / "history.csv")},
                      params={"settings": {"epochs": 1, "batch_size": 32, "network": {"preset": "tiny"}},
                              "device": "cpu"}, log=[str(log)], wildcards={"loss": "mse"})
    script = runpy.run_path(str(REPO / "workflow" / "scripts" / "train_network.py"))["main"]
    script(args)  # no checkpoint to resume: the log starts afresh, the stale .tmp is removed
    assert not log.read_text().startswith("first attempt") and (out / "model.pt").exists()
    assert not list((out / "checkpoints").glob("*.tmp"))
    first = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    # snakemake itself interrupted: it discards the finished job's outputs; the rerun uses the kept checkpoint
    (out / "model.pt").unlink()
    (out / "history.csv").unlink()
    log.write_text("first attempt, killed\n")
    script(args)  # a resume, which appends and retrains nothing
    assert log.read_text().startswith("first attempt, killed\n") and "resumed from" in log.read_text()
    again = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(first[k], again[k]) for k in first) and (out / "history.csv").exists()
