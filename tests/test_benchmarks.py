"""Every script in benchmarks/ runs in its tiny mode (``--tiny``, seconds), so a broken benchmark fails
the test suite.  The numbers are not checked (speed targets are the benchmarks' business); the exit
status and, where a script writes one, its JSON are.  ``benchmarks/_*.py`` are helper modules (``_synthetic.py``: the synthetic data of train.py and
validation_stability.py), exercised through the scripts that import them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (REPO / "benchmarks").glob("*.py") if not p.name.startswith("_"))


def run_tiny(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), "--tiny", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"benchmarks/{script} --tiny failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_every_benchmark_is_listed() -> None:
    assert SCRIPTS == ["ablation.py", "expm.py", "gpu_check.py", "nlls.py", "nlls_invivo.py", "nlls_outliers.py", "simulate.py",
                       "train.py", "validation_stability.py"]


# simulate.py, gpu_check.py and ablation.py have their own tests below; nlls_outliers.py in tests/test_nlls_outliers.py
@pytest.mark.parametrize("script", [s for s in SCRIPTS if s not in ("simulate.py", "gpu_check.py", "nlls_outliers.py",
                                                                    "ablation.py")])
def test_benchmark_runs_in_tiny_mode(script: str, data_dir: Path) -> None:
    run_tiny(script)


def test_simulate_benchmark_reports_both_ratios(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "simulate.json"
    proc = run_tiny("simulate.py", "--json", str(out))
    rec = json.loads(out.read_text())
    # the keys crbnn.report.record reads, and the ratio to the bare floor beside the per-pulse one
    for key in ("name", "jacobian_columns", "crbnn_1thread_cpu_s_per_signal", "reference_cpu_s_per_signal", "ratio",
                "peak_rss_mib", "expm_floor_cpu_s_per_signal", "ratio_to_expm_floor"):
        assert key in rec, key
    assert rec["name"] == "simulate" and rec["jacobian_columns"] == 9
    assert rec["ratio"] == pytest.approx(rec["reference_cpu_s_per_signal"] / rec["crbnn_1thread_cpu_s_per_signal"])
    assert rec["ratio_to_expm_floor"] == pytest.approx(rec["expm_floor_cpu_s_per_signal"] / rec["crbnn_1thread_cpu_s_per_signal"])
    assert "ratio bare floor" in proc.stdout and "ratio per-pulse reference" in proc.stdout


def test_gpu_check_says_when_it_skips_cuda(data_dir: Path) -> None:
    import torch

    proc = run_tiny("gpu_check.py")
    assert "oracle on CPU" in proc.stdout
    if torch.cuda.is_available():
        assert "CUDA vs CPU: max" in proc.stdout
    else:
        assert "SKIPPED the CUDA part" in proc.stdout and "CUDA vs CPU: max" not in proc.stdout


def test_ablation_writes_rows_table_and_plot(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ablation.json"
    run_tiny("ablation.py", "--json", str(out))
    rows = json.loads(out.read_text())
    assert [r["row"] for r in rows] == ["baseline", "log_snr", "combined"]
    for r in rows:
        assert r["snrs"] == [10, 20, 35, 50, 70, 100] and len(r["mean_loss_mean"]) == 6 and r["cpu_minutes"] > 0
        assert all(lo <= v <= hi for lo, v, hi in zip(r["mean_loss_lo_mean"], r["mean_loss_mean"], r["mean_loss_hi_mean"]))
    assert rows[0]["settings"]["m0_distribution"] == "uniform" and rows[1]["settings"]["m0_distribution"] == "log_uniform"
    assert rows[2]["settings"]["normalization"] == "l2"
    assert (tmp_path / "ablation.csv").read_text().count("\n") == 4 and (tmp_path / "ablation.png").stat().st_size > 0
