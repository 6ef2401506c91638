"""The NLLS outlier benchmark (benchmarks/nlls_outliers.py) in its tiny mode: it runs, reports and plots."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import torch
from workflow_helpers import REPO

torch.set_num_threads(1)


def _benchmark():
    spec = importlib.util.spec_from_file_location("nlls_outliers", REPO / "benchmarks" / "nlls_outliers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_mode_reports_and_explains(tmp_path, data_dir):
    report = _benchmark().main(["--tiny", "--out", str(tmp_path)])
    snr = report["snr"]["50"]
    assert snr["fits"] == 4 and 0 <= snr["outliers_local_minimum"] <= snr["outliers"] <= 4
    assert set(snr["loss"]) == {"m0s", "T1", "T2f", "mean"}
    assert all(np.isfinite(v["mean"]) and v["mean"] > 0 and v["median"] > 0 for v in snr["loss"].values())
    assert len(snr["worst"]) == 2 and snr["time_per_fit_s"] > 0
    for row in snr["worst"]:
        assert row["kind"] == ("local minimum" if row["cost_truth_basin"] < row["cost_fit"] * (1 - 1e-3) else "identifiability")
        assert row["off_most"] in row["z"] and -1.0 <= row["omega0_truth_pi_tr"] <= 1.0
    assert (tmp_path / "config_worst_snr50.png").stat().st_size > 1000
    assert json.loads((tmp_path / "config.json").read_text())["samples"] == 4
