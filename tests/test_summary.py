"""crbnn.evaluate.summary: aggregation of the evaluation outputs and LaTeX formatting."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from crbnn.evaluate.summary import read_history, read_summary_table, summarize
from crbnn.report.latex import (
    HEADLINE_ALIASES,
    format_value,
    latex_escape,
    latex_grid_figures,
    latex_macros,
    macro_name,
)
from crbnn.report.tables import latex_prior_table

EVAL = {
    "crb_loss": {"m0s": 1.3, "T1": 2.5, "T2f": 1.1},
    "crb_loss_mean": 1.6333333,
    "rmse": {"m0s": 0.01, "T1": 0.1, "T2f": 0.005},
    "relative_rmse": {"m0s": 0.1, "T1": 0.08, "T2f": 0.07},
    "median_abs_bias_over_sqrt_crb": {"m0s": 0.2, "T1": 0.3, "T2f": 0.1},
    "median_std_over_sqrt_crb": {"m0s": 0.9, "T1": 0.95, "T2f": 1.0},
    "seconds_per_voxel": 3.9e-5,
    "n_samples": 32,
    "device": "cpu",
    "units": ["1", "s", "s"],
}


def write_run(tmp: Path) -> dict[str, Path]:
    """A fake run: evaluation JSON and history of the crb network, the evaluation summary table."""
    (tmp / "crb.json").write_text(json.dumps(EVAL))
    (tmp / "history.csv").write_text(
        "epoch,train_loss,val_crb_mean,lr,epoch_time_s,samples_per_s,wall_time_s\n"
        "1,5.0,4.0,0.01,1.0,100.0,1.0\n2,2.0,1.5,0.01,1.0,300.0,2.5\n3,1.2,1.1,0.005,1.0,200.0,3.75\n"
    )
    (tmp / "table.csv").write_text(
        "grid,estimator,parameter,mean_normalized_loss,median_abs_bias_over_sqrt_crb\n"
        "m0s-T1,crb,T1,1.2,0.1\nm0s-T1,nlls,T1,1.0,nan\n"
    )
    return {"eval": tmp / "crb.json", "hist": tmp / "history.csv", "table": tmp / "table.csv"}


def test_summarize_aggregates_existing_files(tmp_path: Path) -> None:
    f = write_run(tmp_path)
    s = summarize(
        evaluations={"crb": f["eval"], "mse": tmp_path / "missing.json"},
        histories={"crb": f["hist"]},
        summary_table=f["table"],
        config={"sigma": 0.01},
    )
    assert set(s) == {"config", "networks", "training", "grids", "evidence", "claims", "headline"}
    assert set(s["networks"]) == {"crb"}  # a missing file is skipped
    assert s["networks"]["crb"]["crb_loss_mean"] == pytest.approx(1.6333333)
    assert "device" not in s["networks"]["crb"] and "units" not in s["networks"]["crb"]
    assert s["training"]["crb"] == {
        "epochs": 3, "final_train_loss": 1.2, "final_val_crb_mean": 1.1, "wall_time_s": 3.75, "samples_per_s": 200.0,
    }
    assert s["grids"]["m0s-T1"]["crb"]["T1"]["mean_normalized_loss"] == 1.2
    assert math.isnan(s["grids"]["m0s-T1"]["nlls"]["T1"]["median_abs_bias_over_sqrt_crb"])
    json.dumps(s)  # serializable
    # no sweep, no grid files: every claim is judged, and untestable ones say so
    assert {s["claims"][c]["verdict"] for c in ("efficiency", "superiority", "bias")} == {"not testable"}


def test_read_history_empty(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("epoch,train_loss,wall_time_s\n")
    with pytest.raises(ValueError, match="empty"):
        read_history(tmp_path / "h.csv")


def test_read_summary_table_nesting(tmp_path: Path) -> None:
    t = read_summary_table(write_run(tmp_path)["table"])
    assert list(t) == ["m0s-T1"] and sorted(t["m0s-T1"]) == ["crb", "nlls"]


@pytest.mark.parametrize(
    ("parts", "name"),
    [
        (("networks", "crb", "crb_loss_mean"), "NetworksCRBCRBLossMean"),
        (("config", "M0_abs"), "ConfigMZeroAbs"),
        (("grids", "T1-T2f", "nlls", "T2f"), "GridsTOneTTwofNLLSTTwof"),
        (("config", "n_train"), "ConfigNTrain"),
    ],
)
def test_macro_name(parts: tuple[str, ...], name: str) -> None:
    assert macro_name(*parts) == name and name.isalpha()


def test_macro_name_rejects_empty() -> None:
    with pytest.raises(ValueError):
        macro_name("__", "-")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.6333333, r"\num{1.63}"),
        (1.0, r"\num{1.00}"),  # significant digits kept: 1.00, not 1
        (0.001, r"\num{0.00100}"),
        (123456.0, r"\num{1.23e5}"),
        (1.0e-4, r"\num{1.00e-4}"),
        (-2.5e-6, r"\num{-2.50e-6}"),
        (0.0, r"\num{0}"),
        (float("nan"), "--"),
        (float("inf"), "--"),
        (64, r"\num{64}"),
        (4_000_000, r"\num{4000000}"),
        (False, "no"),
        ([0.1, 2], r"\numlist{0.100;2}"),
        ("bias_reduced", r"bias\_reduced"),
    ],
)
def test_format_value(value: object, text: str) -> None:
    assert format_value(value) == text


def test_format_value_digits_and_exact() -> None:
    assert format_value(3.14159, digits=5) == r"\num{3.1416}"
    assert format_value(0.0035, exact=True) == r"\num{0.0035}" and format_value(0.4, exact=True) == r"\num{0.4}"


def test_latex_escape_all_specials() -> None:
    assert latex_escape("a&b%c$d#e_f{g}") == r"a\&b\%c\$d\#e\_f\{g\}"


def test_latex_macros_aliases_and_leaves() -> None:
    s = {"networks": {"crb": EVAL}, "config": {"sigma": 0.01, "n_train": 64}}
    text = latex_macros(s, raw={"ManuscriptTitle": "A title"})
    lines = text.splitlines()
    assert lines[0].startswith("%")
    assert r"\newcommand{\ManuscriptTitle}{A title}" in lines
    assert r"\newcommand{\CRBLossCRB}{\num{1.63}}" in lines
    assert r"\newcommand{\CRBLossMSE}{--}" in lines  # alias of a missing value
    assert r"\newcommand{\ConfigSigma}{\num{0.01}}" in lines  # configured: as written
    assert r"\newcommand{\NetworksCRBCRBLossTOne}{\num{2.50}}" in lines  # measured: significant digits
    names = [ln.split("}")[0] for ln in lines[1:]]
    assert len(names) == len(set(names))
    assert all(a in text for a in HEADLINE_ALIASES)


def test_latex_macros_clash() -> None:
    with pytest.raises(ValueError, match="clashes"):
        latex_macros({"config": {"n_train": 1, "n-train": 2}})
    with pytest.raises(ValueError, match="clashes"):
        latex_macros({}, raw={"CRBLossCRB": "x"})
    with pytest.raises(ValueError, match="bad or duplicate"):
        latex_macros({}, raw={"Title2": "x"})


def test_latex_grid_figures_and_priors() -> None:
    figs = latex_grid_figures(["m0s-T1", "T1-T2f"], ["bias", "sqrt_crb"])
    assert figs.count(r"\begin{figure}") == 4
    assert "figures/grid_maps_sqrt_crb_T1-T2f.pdf" in figs
    table = latex_prior_table({"T2s": {"dist": "truncnormal", "mean": 1.4e-5, "std": 4e-6, "low": 5e-6, "high": 2.1e-5}})
    # in the display unit (us) with the symbol and the siunitx unit
    assert r"$T_2^s$ & \si{\micro\second} & truncated normal & $\mathcal{N}$(\num{14}, \num{4}) on [\num{5}, \num{21}]" in table
    assert "transform" not in table and "SI" not in table
    assert table.rstrip().endswith(r"\end{tabular}")


def test_read_invivo_regions_keeps_tissue_regions_and_mask_counts(tmp_path: Path) -> None:
    from crbnn.evaluate.summary import read_invivo_regions, summarize

    rows = [
        {"estimator": "crb", "region": "WM", "parameter": "m0s", "n": 80, "mean": 0.15, "sd": 0.02, "difference": -0.01,
         "difference_se": 0.002, "n_negative": 1},
        {"estimator": "crb", "region": "WM", "parameter": "T1", "n": 80, "mean": 0.9, "sd": 0.05, "difference": 0.01,
         "difference_se": None, "n_negative": None},
        {"estimator": "crb", "region": "mask", "parameter": "T1", "n": 900, "mean": 0.9, "sd": 0.05, "difference": 0.0,
         "difference_se": 0.001, "n_negative": None},
        {"estimator": "crb", "region": "box_WM", "parameter": "T1", "n": 64, "mean": 0.9, "sd": 0.05, "difference": 0.01,
         "difference_se": 0.001},
        {"estimator": "crb", "region": "mask", "parameter": "m0s", "n": 900, "mean": 0.1, "sd": 0.05, "difference": 0.0,
         "difference_se": 0.001, "n_negative": 12},
    ]
    p = tmp_path / "regions.json"
    p.write_text(json.dumps({"rows": [], "tissue_regions": {"n_voxels": {"WM": 81}}, "differences": rows}))
    r = read_invivo_regions(p)
    assert set(r) == {"WM", "mask"} and r["WM"]["n"] == 81
    assert r["WM"]["crb"]["m0s"]["difference_se"] == 0.002 and r["WM"]["crb"]["negative_m0s"] == 1
    assert math.isnan(r["WM"]["crb"]["T1"]["difference_se"]) and r["mask"]["crb"] == {"negative_m0s": 12}
    assert summarize(invivo_regions=p)["invivo"] == r and "invivo" not in summarize(invivo_regions=tmp_path / "none.json")
def test_informative_std_ratio_uses_points_with_small_crb() -> None:
    import xarray as xr

    from crbnn.evaluate.summary import informative_std_ratio

    sqrt_crb = np.array([[[0.01, 0.2]]])  # estimator x parameter(1) x points: prior width 0.35 -> cut 0.07
    std = np.array([[[1.05, 0.3]]])
    ds = xr.Dataset({"sqrt_crb": (("estimator", "parameter", "i"), sqrt_crb),
                     "std_over_sqrt_crb": (("estimator", "parameter", "i"), std)},
                    coords={"estimator": ["nlls"], "parameter": ["m0s"]})
    out = informative_std_ratio(ds, {"m0s": {"dist": "uniform", "low": 0.0, "high": 0.35}})
    assert out["m0s"] == pytest.approx(1.05) and out["points"] == {"m0s": 1}


def test_read_snr_sweep_round_trip(tmp_path: Path) -> None:
    from crbnn.evaluate.summary import read_snr_sweep

    p = tmp_path / "sweep.csv"
    p.write_text("estimator,snr,parameter,n_samples,mean_loss,mean_loss_lo\ncrb,50.0,mean,10,1.1,1.0\n")
    assert read_snr_sweep(p) == {"crb": {"SNR50": {"mean": {"n_samples": 10.0, "mean_loss": 1.1, "mean_loss_lo": 1.0}}}}
