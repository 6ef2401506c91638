"""Every bad input stops with a clear error at the first moment it can be known (issue 13).

One table per kind of input: the config (through the real ``crbnn.config.checks.validate_config``
that ``workflow/rules/common.smk`` calls, plus a few real ``snakemake -n`` runs), pulse-train files,
the build_sequence script, and ``crbnn infer`` (models, images, bases, arguments, output folders).
Each case asserts the exit status or exception, that the message names the offending key, file or
pulse, and that no output was left behind.  Also: a training job stopped by a signal writes its
checkpoint and resumes to the same weights.

Issue 19 added the values the schemas let through (non-finite numbers, inverted ranges, grids outside
the NLLS bounds, tables too small to train or too big for a job's memory, image names and boxes, the
in vivo slice's R, pulse trains shorter than the basis), the config files themselves
(``crbnn check-config``), ``crbnn infer`` (complex images, boxes, devices, TR of a MATLAB train,
non-orthonormal bases, concurrent runs, a full disk) and damaged intermediates (data sets, grids,
checkpoints).  The README's table of bad inputs is checked against these tables
(:func:`test_readme_table_matches_the_cases`).
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
from crbnn.cli import main
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
# a user's train of 3 pulses: a basis of rank 2 (R <= pulses), without the in vivo slice (R = 13)
PLAIN = {"sequence": {"source": "file", "file": "train.csv"}, "basis": {"source": "computed", "rank": 2},
         "images": {"images": ["vials", "brain"]}}

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
    # ---- issue 19: values the schema let through, which then tripped a job or ran to a wrong exit 0
    # numbers that must be finite
    ("prior-high-inf", {"priors": {"parameters": {"T1": {"dist": "uniform", "low": 0.4, "high": float("inf")}}}}, {},
     ["priors.parameters.T1.high", "inf is not a finite number"]),
    ("truncnormal-mean-nan", {"priors": {"parameters": {"m0s": {"mean": float("nan")}}}}, {},
     ["priors.parameters.m0s.mean", "nan is not a finite number"]),
    ("truncnormal-std-inf", {"priors": {"parameters": {"B1": {"std": float("inf")}}}}, {},
     ["priors.parameters.B1.std", "inf"]),
    ("grid-fixed-nan", {"grids": {"fixed": {"T1": float("nan")}}}, {}, ["grids.fixed.T1", "not a finite number"]),
    ("noise-sigma-inf", {"train": {"noise": {"sigma": float("inf")}}}, {}, ["train.noise.sigma", "finite"]),
    ("snr-nan", {"evaluate": {"snr_sweep": {"snrs": [10, float("nan")]}}}, {}, ["evaluate.snr_sweep.snrs[1]", "nan"]),
    # ranges given as two keys or a pair
    ("noise-m0-min-above-max", {"train": {"noise": {"m0_min": 2.0, "m0_max": 0.5}}}, {},
     ["train.noise.m0_min", "2.0", "train.noise.m0_max = 0.5"]),
    ("test-set-m0-range-reversed", {"evaluate": {"test_set": {"m0_range": [1.0, 0.1]}}}, {},
     ["evaluate.test_set.m0_range", "[1.0, 0.1]"]),
    ("phantom-b1-range-reversed", {"phantom": {"b1_range": [1.2, 0.8]}}, {}, ["phantom.b1_range", "low < high"]),
    ("grid-axis-start-above-stop", {"grids": {"sets": {"m0s-T1": {"axes": {"m0s": {"start": 0.25, "stop": 0.01,
                                                                                    "num": 4}}}}}}, {},
     ["grids.sets.m0s-T1.axes.m0s", "start = 0.25 is not below stop = 0.01"]),
    ("nlls-dictionary-reversed", {"nlls": {"dictionary": {"T1": {"start": 2.5, "stop": 0.5, "num": 3}}}}, {},
     ["nlls.dictionary.T1", "start = 2.5"]),
    # grid values the NLLS bounds or the priors exclude
    ("grid-fixed-T2f-above-nlls-bound", {"grids": {"fixed": {"T2f": 0.5}}}, {},
     ["grids.fixed.T2f", "T2f = 0.5", "NLLS bounds [0.02, 0.25]", "nlls.bounds.T2f"]),
    ("grid-axis-T1-above-nlls-bound", {"grids": {"sets": {"m0s-T1": {"axes": {"T1": {"start": 0.65, "stop": 3.0,
                                                                                      "num": 4}}}}}}, {},
     ["grids.sets.m0s-T1.axes.T1.stop", "T1 = 3", "NLLS bounds"]),
    ("grid-fixed-m0s-outside-prior", {"nlls": {"bounds": {"m0s": [0.0, 0.6]}}, "grids": {"fixed": {"m0s": 0.5}}}, {},
     ["grids.fixed.m0s", "prior's support [0, 0.35]", "priors.parameters.m0s"]),
    # tables too small to train, too many shards, too big for the memory of a job
    ("train-table-of-one", {"simulate": {"tables": {"train": {"n": 1, "shards": 1}}}}, {},
     ["simulate.tables.train.n", "1 training samples", "train.optimizer.batch_size = 16"]),
    ("train-table-below-bias-reduced-batch", {"simulate": {"tables": {"train": {"n": 12, "shards": 1}}},
                                              "train": {"optimizer": {"batch_size": 8}, "bias_reduced": {"batch_size": 16}}},
     {}, ["simulate.tables.train.n", "12 training samples", "train.bias_reduced.batch_size = 16"]),
    ("max-train-samples-below-batch", {"train": {"max_train_samples": 8}}, {}, ["train.max_train_samples", "8"]),
    ("more-shards-than-rows", {"simulate": {"tables": {"val": {"n": 4, "shards": 8}}}}, {},
     ["simulate.tables.val.shards", "8 shards for n = 4"]),
    ("val-table-of-one", {"simulate": {"tables": {"val": {"n": 1, "shards": 1}}}}, {},
     ["simulate.tables.val.n", "at least 2"]),
    ("table-too-big-for-sample-parameters", {"simulate": {"tables": {"train": {"n": 100000000, "shards": 10000}}}}, {},
     ["simulate.tables.train.n", "sample_parameters job would need about", "MB"]),
    ("shard-too-big-for-compute-mem", {"simulate": {"tables": {"train": {"n": 2000000, "shards": 1}}}}, {},
     ["simulate.tables.train.shards", "simulate_shard job", "requests 2000 MB"]),
    ("train-set-too-big-for-train-mem", {"simulate": {"tables": {"train": {"n": 1000000, "shards": 100}}}}, {},
     ["simulate.tables.train.n", "train_network job", "train.mem_mb"]),
    # images: names, boxes, the in vivo slice's R
    ("basis-rank-vs-invivo-slice", {"basis": {"rank": 12}}, {}, ["basis.rank", "12", "R = 13", "images.images"]),
    ("images-unknown-kind", {"images": {"images": ["invivo", "foo"]}}, {},
     ["images.images", "['foo']", "['invivo', 'vials', 'brain']"]),
    ("images-phantom-not-built", {"phantom": {"kinds": ["vials"]}}, {}, ["images.images", "['brain']", "phantom.kinds"]),
    ("invivo-box-inverted", {"images": {"invivo_voxels": {"box": [59, 56, 129, 126]}}}, {},
     ["images.invivo_voxels.box", "[59, 56, 129, 126]", "inverted"]),
    ("invivo-box-outside", {"images": {"invivo_voxels": {"box": [170, 180, 0, 10]}}}, {},
     ["images.invivo_voxels.box", "outside the in vivo slice (175 x 215 voxels)"]),
    ("region-box-outside", {"images": {"regions": {"WM": [52, 60, 300, 310]}}}, {},
     ["images.regions.WM", "outside the in vivo slice"]),
    ("region-box-inverted", {"images": {"regions": {"GM": [72, 64, 88, 96]}}}, {}, ["images.regions.GM", "inverted"]),
    ("phantom-box-outside", {"images": {"phantom_voxels": {"box": [0, 20, 0, 4]}}}, {},
     ["images.phantom_voxels.box", "the phantoms (16 x 16 voxels)"]),
    ("invivo-stride-misses-box", {"images": {"invivo_voxels": {"stride": 10, "box": [56, 59, 126, 129]}}}, {},
     ["images.invivo_voxels.stride", "stride 10 leaves no voxel", "[56, 59, 126, 129]"]),
    ("phantom-stride-beyond-size", {"images": {"phantom_voxels": {"stride": 40, "box": None}}}, {},
     ["images.phantom_voxels.stride", "no voxel of the phantoms"]),
    ("tissue-report-not-a-class", {"images": {"tissue": {"report": ["WM", "deepGM"]}}}, {},
     ["images.tissue.report", "['deepGM']", "images.tissue.classes"]),
    ("tissue-feature-above-rank", {"images": {"tissue": {"features": [2, 14]}}}, {},
     ["images.tissue.features", "[14]", "basis.rank = 13"]),
    # pulse trains too short for the basis
    ("train-of-one-pulse", PLAIN, {"train.csv": "# tr = 3.5 ms\nalpha_rad,trf_s\n3.141592653589793,0.0005\n"},
     ["sequence.file", "train.csv", "1 pulse(s), fewer than basis.rank = 2"]),
    ("five-pulses-rank-13", merge(PLAIN, {"basis": {"rank": 13}}), {"train.csv": GOOD_TRAIN + "0.4,0.0003\n0.3,0.0003\n"},
     ["sequence.file", "train.csv", "5 pulse(s), fewer than basis.rank = 13"]),
    ("dictionary-smaller-than-rank", {"basis": {"source": "computed", "dictionary_size": 8}}, {},
     ["basis.dictionary_size", "8", "basis.rank = 13"]),
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


# The config files themselves.  Snakemake reads --configfile before the workflow starts and reports
# these without the file's name (or with a raw traceback); `crbnn check-config <files>` names it.
CONFIGFILE_CASES: list[tuple[str, bytes | None, list[str]]] = [
    ("configfile-not-yaml", b"basis: {rank: 13\n", ["bad.yaml", "not valid YAML at line 2"]),
    ("configfile-empty", b"", ["bad.yaml", "config file is empty"]),
    ("configfile-only-comments", b"# nothing here\n", ["bad.yaml", "config file is empty"]),
    ("configfile-a-list", b"- basis\n- rank\n", ["bad.yaml", "mapping of sections", "got a list"]),
    ("configfile-a-scalar", b"13\n", ["bad.yaml", "got a int"]),
    ("configfile-binary", bytes(range(128, 256)), ["bad.yaml", "not text", "UTF-8"]),
    ("configfile-missing", None, ["bad.yaml", "config file not found"]),
    ("configfile-tab-indented", b"basis:\n\trank: 13\n", ["bad.yaml", "not valid YAML at line 2"]),
    ("configfile-bad-value", b"train:\n  noise: {m0_min: 2.0, m0_max: 0.5}\n", ["train.noise.m0_min"]),
]


@pytest.mark.parametrize(("content", "fragments"), [c[1:] for c in CONFIGFILE_CASES],
                         ids=[c[0] for c in CONFIGFILE_CASES])
def test_bad_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None,
                         fragments: list[str]) -> None:
    if content is not None:
        (tmp_path / "bad.yaml").write_bytes(content)
    before = listing(tmp_path)
    rc = main(["check-config", str(REPO / "config" / "test.yaml"), str(tmp_path / "bad.yaml"),
               "--directory", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("crbnn check-config: error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert listing(tmp_path) == before


def test_check_config_accepts_the_shipped_configs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["check-config", str(REPO / "config" / "test.yaml"), "--directory", str(tmp_path)]) == 0
    assert "config OK" in capsys.readouterr().out


def test_config_that_is_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"^<top level>: the configuration is a list, not a mapping"):
        validate_config([1, 2], SCHEMAS)  # type: ignore[arg-type]


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
        (merge(PLAIN, {"sequence": {"tr": 0.004}}), {"train.csv": "alpha_rad,trf_s\n1.0,0.0003\n0.5,0.0003\n"}, 4e-3),
    ],
    ids=["public", "file-tr", "explicit-agrees", "explicit-for-file-without-tr"],
)
def test_good_configs_resolve_tr(tmp_path: Path, overlay: dict[str, Any], files: dict[str, str], tr: float) -> None:
    _write(tmp_path, files)
    cfg = merge(TEST_CONFIG, overlay)
    assert validate_config(cfg, SCHEMAS, base=tmp_path) == pytest.approx(tr, rel=1e-12)
    assert cfg["images"]["tissue"]["filter_size"] == 3  # defaults filled in


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
    ("grid-fixed-T2f-above-nlls-bound", "grids:\n  fixed: {T2f: 0.5}\n", {},
     ["invalid config at grids.fixed.T2f", "NLLS bounds", "config files:", "bad.yaml", "crbnn check-config"]),
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
    (tmp_path / "o.yaml").write_text("sequence: {source: file, file: train.csv}\nbasis: {source: computed, rank: 2}\n"
                                     "images: {images: [vials, brain]}\n")
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
        elif kind == "complex":
            x = np.random.default_rng(1).standard_normal((4, 3, 1, 2 * R))
            write_nifti(p, (x + 1j * x).astype(np.complex64))
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
    # issue 19: values that used to run to exit 0 with wrong output, or raw tracebacks
    ("image-complex-valued", lambda d: {"coefficients": str(_image("complex")(d))},
     ["img_complex.nii.gz", "complex-valued NIfTI", "2R"]),
    ("box-outside-image", lambda d: {"basis": str(d / "basis.h5"), "sequence": str(d / "sequence.h5"),
                                     "_box": "500 600 500 600"}, ["--box", "outside the image", "4 x 3"]),
    ("box-partly-outside-image", lambda d: {"_box": "0 5 0 2"}, ["--box", "X1 <= 4"]),
    ("box-selects-no-mask-voxel", lambda d: (write_nifti(d / "m1.nii.gz", np.pad(np.ones((1, 1, 1), np.uint8),
                                                                                  ((3, 0), (2, 0), (0, 0)))),
                                             {"mask": str(d / "m1.nii.gz"), "basis": str(d / "basis.h5"),
                                              "sequence": str(d / "sequence.h5"), "_box": "0 2 0 2"})[1],
     ["--box", "selects no voxel"]),
    ("stride-selects-no-voxel", lambda d: (write_nifti(d / "m2.nii.gz", np.pad(np.ones((1, 1, 1), np.uint8),
                                                                                ((0, 3), (0, 2), (0, 0)))),
                                           {"mask": str(d / "m2.nii.gz"), "basis": str(d / "basis.h5"),
                                            "sequence": str(d / "sequence.h5"), "stride": "3"})[1],
     ["--stride 3", "selects no voxel"]),
    ("mask-empty", lambda d: (write_nifti(d / "m0.nii.gz", np.zeros((4, 3, 1), np.uint8)),
                              {"mask": str(d / "m0.nii.gz")})[1], ["c.nii.gz", "no voxel to analyse"]),
    ("device-unknown", lambda d: {"device": "tpu0"}, ["--device", "'tpu0'", "'cuda:N'"]),
    ("device-cuda-index-malformed", lambda d: {"device": "cuda:x"}, ["--device", "'cuda:x'"]),
    ("sequence-mat-without-tr", lambda d: ((d / "train.mat").write_bytes(b"x"),
                                           {"basis": str(d / "basis.h5"), "sequence": str(d / "train.mat")})[1],
     ["train.mat", "stores no TR", "--tr"]),
    ("sequence-plain-without-tr", lambda d: ((d / "t.csv").write_text("alpha_rad,trf_s\n3.14,0.0005\n0.5,0.0003\n"),
                                             {"basis": str(d / "basis.h5"), "sequence": str(d / "t.csv")})[1],
     ["t.csv", "TR is required", "--tr"]),
    ("sequence-tr-disagrees", lambda d: {"basis": str(d / "basis.h5"), "sequence": str(d / "sequence.h5"),
                                         "tr": "0.004"}, ["sequence.h5", "TR = 0.0035 s", "--tr gives"]),
    ("basis-duplicated-column", lambda d: (write_h5(d / "bdup.h5", {"u": np.column_stack(
        [np.eye(4, 2, dtype=complex), np.eye(4, 1, dtype=complex)])}), {"basis": str(d / "bdup.h5")})[1],
     ["bdup.h5", "not orthonormal", "(0, 2)"]),
    ("basis-unnormalized", lambda d: (write_h5(d / "bx2.h5", {"u": 2 * np.eye(4, R, dtype=complex)}),
                                      {"basis": str(d / "bx2.h5")})[1], ["bx2.h5", "not orthonormal"]),
    ("out-claimed-by-a-running-infer", lambda d: ((d / ".out.crbnn-lock").write_text(str(os.getpid())), {})[-1],
     ["out", "another crbnn infer", ".out.crbnn-lock"]),
]


@pytest.mark.parametrize(("make", "fragments"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_bad_infer_inputs(cli: Path, capsys: pytest.CaptureFixture[str], make: Callable[[Path], dict[str, str | None]],
                          fragments: list[str]) -> None:
    extra = make(cli)
    box = extra.pop("_box", None)
    before = {p: p.read_bytes() for p in (cli / "out").rglob("*")} if (cli / "out").is_dir() else None
    out_was_file = (cli / "out").is_file()
    rc = main(_args(cli, **extra) + (["--box", *box.split()] if box else []))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert not list(cli.glob(".out.crbnn-tmp-*"))  # no private temporary folder left
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
    ("sigma-infinite", {"sigma": "inf"}, "--sigma"),
    ("tr-negative", {"sequence": "seq.h5", "basis": "b.h5", "tr": "-0.0035"}, "--tr"),
    ("tr-in-ms", {"sequence": "seq.h5", "basis": "b.h5", "tr": "3.5"}, "--tr"),
    ("tr-without-sequence", {"tr": "0.0035"}, "--tr"),
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


def test_device_cuda_without_cuda_names_the_option(cli: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(_args(cli, device="cuda")) == 2
    err = capsys.readouterr().err
    assert "--device is 'cuda' but torch sees no CUDA device" in err and "Traceback" not in err
    assert not (cli / "out").exists()


def test_disk_full_while_writing_names_the_file_and_leaves_nothing(cli: Path, capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Formerly: `[Errno 28]` without a file, two of three maps left, and --overwrite then refused them."""
    import crbnn.images.maps as maps_module

    real, calls = maps_module.write_nifti, []

    def full_after_one(path: Any, *a: Any, **k: Any) -> None:
        calls.append(path)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        real(path, *a, **k)

    monkeypatch.setattr(maps_module, "write_nifti", full_after_one)
    assert main(_args(cli)) == 2
    err = capsys.readouterr().err
    assert "out/T1.nii.gz: cannot write (No space left on device" in err, err
    assert not (cli / "out").exists()
    assert not [p for p in cli.iterdir() if p.name.startswith(".out.")]  # no temporary folder, no lock
    monkeypatch.setattr(maps_module, "write_nifti", real)
    assert main(_args(cli)) == 0  # the rerun needs no --overwrite
    assert sorted(p.name for p in (cli / "out").iterdir()) == ["T1.nii.gz", "T2f.nii.gz", "info.json", "m0s.nii.gz"]


def test_concurrent_runs_with_the_same_out_exactly_one_succeeds(cli: Path) -> None:
    """Formerly both exited 0 and the folder held a mix of the two models' maps."""
    import threading

    other = cli / "model2.pt"
    blob = torch.load(cli / "model.pt", weights_only=True)
    blob["meta"]["loss"] = "mse"
    torch.save(blob, other)
    codes: dict[str, int] = {}
    start = threading.Barrier(2)

    def run(name: str, model: Path) -> None:
        start.wait()
        codes[name] = main(_args(cli, model=str(model)))

    threads = [threading.Thread(target=run, args=(n, m)) for n, m in (("crb", cli / "model.pt"), ("mse", other))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(codes.values()) == [0, 2], codes
    winner = next(n for n, c in codes.items() if c == 0)
    info = json.loads((cli / "out" / "info.json").read_text())
    assert info["loss"] == winner and info["model"].endswith("model.pt" if winner == "crb" else "model2.pt")
    assert sorted(p.name for p in (cli / "out").iterdir()) == ["T1.nii.gz", "T2f.nii.gz", "info.json", "m0s.nii.gz"]
    assert not [p for p in cli.iterdir() if p.name.startswith(".out.")]


def test_lock_of_a_killed_run_is_taken_over(cli: Path) -> None:
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    (cli / ".out.crbnn-lock").write_text(str(dead.pid))
    (cli / ".out.crbnn-tmp-abc").mkdir()  # left by the killed run
    (cli / ".out.crbnn-tmp-abc" / "m0s.nii.gz").write_text("half")
    assert main(_args(cli)) == 0
    assert not [p for p in cli.iterdir() if p.name.startswith(".out.")]


def test_sequence_mat_with_tr_is_read(cli: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The public .mat with --tr gets past the TR (then the hash check names it: another train)."""
    rc = main(_args(cli, basis=str(cli / "basis.h5"), sequence=str(data_dir / "control_MT_v3p2_TR3p5ms_discretized.mat"),
                    tr="0.0035"))
    err = capsys.readouterr().err
    assert rc == 2 and "pulse train sha256" in err and "--tr" not in err, err


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


# ================================================================================ damaged intermediates
def _small_dataset(path: Path) -> None:
    _toy_data(path, 16, 0)
    with h5py.File(path, "a") as f:  # a full shard: with its Jacobian
        f["jacobian"] = np.zeros((16, 4, 3), np.complex128)


def _truncate(path: Path, keep: int = 700) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _netcdf(path: Path) -> None:
    from crbnn.evaluate.grid import write_netcdf
    import xarray as xr

    write_netcdf(path, xr.Dataset({"bias": ("x", np.arange(200.0))}))


def _read_table(p: Path) -> Any:
    from crbnn.data.datasets import read_parameter_table

    return read_parameter_table(p)


def _read_netcdf(p: Path) -> Any:
    from crbnn.evaluate.grid import read_netcdf

    return read_netcdf(p)


def _merge(p: Path) -> Any:
    from crbnn.data.datasets import merge_datasets

    _small_dataset(p.parent / "shard_0.h5")
    return merge_datasets([p.parent / "shard_0.h5", p], p.parent / "merged.h5")


# (id, file name, how to make it damaged, the reader, fragments of the message)
DAMAGED_CASES: list[tuple[str, str, Callable[[Path], None], Callable[[Path], Any], list[str]]] = [
    ("train-h5-truncated", "train.h5", lambda p: (_small_dataset(p), _truncate(p)), read_training_data,
     ["train.h5: damaged or unreadable", "snakemake --cores all --forcerun", "train.h5"]),
    ("train-h5-is-text", "train.h5", lambda p: p.write_text("not hdf5"), read_training_data,
     ["train.h5: damaged or unreadable", "--forcerun"]),
    ("train-h5-empty", "train.h5", lambda p: p.write_bytes(b""), read_training_data, ["train.h5: damaged", "--forcerun"]),
    ("train-h5-missing", "train.h5", lambda p: None, read_training_data, ["train.h5: missing", "--forcerun"]),
    ("parameter-table-truncated", "test.h5", lambda p: (write_h5(p, {"parameters": np.ones((64, 7))}), _truncate(p)),
     _read_table, ["test.h5: damaged or unreadable", "--forcerun"]),
    ("shard-truncated-in-merge", "shard_1.h5", lambda p: (_small_dataset(p), _truncate(p)), _merge,
     ["shard_1.h5: damaged or unreadable", "--forcerun"]),
    ("grid-nc-truncated", "m0s-T1.nc", lambda p: (_netcdf(p), _truncate(p, 1500)), _read_netcdf,
     ["m0s-T1.nc: damaged or unreadable", "--forcerun"]),
    ("grid-nc-is-text", "m0s-T1.nc", lambda p: p.write_text("x"), _read_netcdf, ["m0s-T1.nc: damaged", "--forcerun"]),
]


@pytest.mark.parametrize(("name", "make", "reader", "fragments"), [c[1:] for c in DAMAGED_CASES],
                         ids=[c[0] for c in DAMAGED_CASES])
def test_damaged_intermediate_names_file_and_rebuild(tmp_path: Path, name: str, make: Callable[[Path], None],
                                                     reader: Callable[[Path], Any], fragments: list[str]) -> None:
    from crbnn.common.io import DamagedFileError

    path = tmp_path / name
    make(path)
    with pytest.raises(DamagedFileError) as err:
        reader(path)
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert not (tmp_path / "merged.h5").exists() and not list(tmp_path.glob("*.tmp"))


def _tiny_run(tmp_path: Path) -> tuple[Any, Any, TrainSettings]:
    _toy_data(tmp_path / "train.h5", 64, 0)
    data = read_training_data(tmp_path / "train.h5")
    s = TrainSettings.from_dict({"epochs": 3, "batch_size": 32, "checkpoint_every": 1, "network": {"preset": "tiny"}})
    return data, data, s


def _killed_after_epoch_2(train: Any, val: Any, s: TrainSettings, ckpt: Path) -> None:
    """A training run interrupted after epoch 2 (its checkpoints stay in ``ckpt``)."""

    def stop_after_2(epoch: int) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_network(train, val, s, "mse", checkpoint_dir=ckpt, on_epoch_end=stop_after_2)


@pytest.mark.parametrize("damage", ["truncated", "text", "empty", "a-list"])
def test_damaged_checkpoint_is_set_aside_and_training_restarts(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                               damage: str) -> None:
    """Formerly a raw torch traceback on every rerun until the file was deleted by hand."""
    train, val, s = _tiny_run(tmp_path)
    ref, _ = train_network(train, val, s, "mse")
    ckpt = tmp_path / "ck"
    _killed_after_epoch_2(train, val, s, ckpt)
    last = ckpt / "last.pt"
    if damage == "truncated":
        _truncate(last, 300)
    elif damage == "text":
        last.write_text("oops")
    elif damage == "empty":
        last.write_bytes(b"")
    else:
        torch.save([1, 2], last)
    (ckpt / "previous.pt").unlink()  # nothing to fall back on: from scratch
    with caplog.at_level("WARNING"):
        model, hist = train_network(train, val, s, "mse", checkpoint_dir=ckpt)
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert any("last.pt is damaged" in r.getMessage() and "last.pt.damaged" in r.getMessage() for r in caplog.records)
    assert (ckpt / "last.pt.damaged").exists()
    for key, value in ref.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key


def test_damaged_checkpoint_resumes_from_the_previous_one(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    train, val, s = _tiny_run(tmp_path)
    ref, _ = train_network(train, val, s, "mse")
    ckpt = tmp_path / "ck"
    _killed_after_epoch_2(train, val, s, ckpt)
    assert torch.load(ckpt / "previous.pt", weights_only=True)["epoch"] == 1
    _truncate(ckpt / "last.pt", 300)
    with caplog.at_level("INFO"):
        model, hist = train_network(train, val, s, "mse", checkpoint_dir=ckpt)
    assert any("previous.pt" in r.getMessage() for r in caplog.records)
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    for key, value in ref.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key


@pytest.mark.parametrize(("error", "fragments"), [
    (RuntimeError("basic_ios::clear: iostream error"), ["last.pt: cannot write the training checkpoint", "iostream"]),
    (OSError(28, "No space left on device"), ["last.pt: cannot write the training checkpoint", "No space left"]),
    (PermissionError(13, "Permission denied"), ["last.pt: cannot write", "Permission denied"]),
], ids=["disk-full-torch", "disk-full-oserror", "read-only"])
def test_checkpoint_write_failure_names_path_and_cause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       error: BaseException, fragments: list[str]) -> None:
    train, val, s = _tiny_run(tmp_path)

    def failing_save(obj: Any, f: Any) -> None:
        Path(f).write_bytes(b"")
        raise error

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError) as err:
        train_network(train, val, s, "mse", checkpoint_dir=tmp_path / "ck")
    for fragment in fragments:
        assert fragment in str(err.value), (fragment, str(err.value))
    assert str(tmp_path / "ck" / "last.pt") in str(err.value)
    assert listing(tmp_path / "ck") == []


def test_read_only_results_folder_is_named_before_any_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from crbnn.config.resources import check_writable

    (tmp_path / "results").mkdir()
    real = tempfile.TemporaryFile

    def read_only(*a: Any, dir: Any = None, **k: Any) -> Any:  # noqa: A002
        if dir is not None and Path(dir).name == "results":
            raise OSError(30, "Read-only file system")
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    with pytest.raises(ConfigError, match=r"results: the workflow cannot write there \(Read-only file system\)"):
        check_writable(tmp_path)
    monkeypatch.setattr(tempfile, "TemporaryFile", real)
    check_writable(tmp_path)  # writable: passes


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
                      output={"model": str(out / "model.pt"), "history": str(out / "history.csv"),
                              "network": str(out / "network.json")},
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


# ================================================================================ README table
def test_readme_table_matches_the_cases() -> None:
    """The README's table of bad inputs (between the bad-inputs markers) shows real, tested messages:
    each row names a case of this file, and its message holds one of that case's fragments; each
    table of cases (config, config files, crbnn infer, damaged intermediates) has rows there."""
    text = (REPO / "README.md").read_text().split("<!-- bad-inputs:begin -->")[1].split("<!-- bad-inputs:end -->")[0]
    rows = [line for line in text.strip().splitlines()[2:] if line.startswith("|")]
    assert rows
    tables = {"config": {c[0]: c[3] for c in CONFIG_CASES}, "configfile": {c[0]: c[2] for c in CONFIGFILE_CASES},
              "infer": {c[0]: c[2] for c in CLI_CASES}, "damaged": {c[0]: c[4] for c in DAMAGED_CASES}}
    shown: set[str] = set()
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        message, case = cells[0].replace("`", ""), cells[-1].strip("`")
        table = next((name for name, cases in tables.items() if case in cases), None)
        assert table is not None, f"README row names no case of tests/test_bad_inputs.py: {case!r}"
        fragments = [f for f in tables[table][case] if len(f) >= 6]
        assert any(f in message for f in fragments), (case, message, fragments)
        shown.add(table)
    assert shown == set(tables), f"README table lacks rows for {set(tables) - shown}"
