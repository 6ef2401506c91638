r"""Headline numbers of a run (``results/summary.json``) and the verdicts on the paper's claims.

The summary aggregates what the evaluation wrote (``results/evaluate_network/final/<loss>.json``,
``results/train_network/<loss>/history.csv``, ``results/figures/summary_table.csv``, the SNR sweep,
the regime comparison, the in vivo regions) plus the configuration values the manuscript quotes;
:mod:`crbnn.report.latex` turns it into LaTeX macros and tables.

Layout of the summary (all keys optional except ``config``)::

    {"networks": {loss: {"crb_loss_mean": float, "crb_loss": {p: float}, "rmse": {p: float},
                         "relative_rmse": {p: float}, "median_abs_bias_over_sqrt_crb": {p: float},
                         "median_std_over_sqrt_crb": {p: float}, "seconds_per_voxel": float,
                         "n_samples": int}},
     "training": {loss: {"epochs": int, "final_train_loss": float, "final_val_crb_mean": float,
                         "wall_time_s": float, "samples_per_s": float}},
     "grids": {grid: {estimator: {parameter: {"mean_normalized_loss": float, ...}}}},
     "snr_sweep": {estimator: {"SNR<s>": {parameter: {"mean_loss": float, "mean_loss_lo": ..., ...}}}},
     "regimes": {"point<i>": {"point": {...}, "sqrt_crb": {p: float}, "sqrt_crb_all_unknown": {...}, "ratio": {...}}},
     "nlls_efficiency": {grid: {parameter: float, "points": int}},
     "evidence": {...},   # crbnn.evaluate.claims.collect_evidence: final test set and grids
     "claims": {claim: {"verdict": "held" | "not held" | "not testable", "criterion": str, "reason": str,
                        "numbers": {...}}, "line": str},   # crbnn.evaluate.claims.judge_all
     "headline": {"snr_range": [lo, hi], "crb_loss_mean": {loss: float}, "crb_by_snr": {"SNR<s>": class}},
     "development": {"networks": {loss: {...}}, "snr_sweep": {...}},   # never read by a verdict
     "config": {...: number | str | list}}
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: Keys of ``results/evaluate_network/<loss>.json`` copied into the summary.
NETWORK_KEYS = (
    "crb_loss_mean",
    "crb_loss",
    "rmse",
    "relative_rmse",
    "median_abs_bias_over_sqrt_crb",
    "median_std_over_sqrt_crb",
    "seconds_per_voxel",
    "n_samples",
    "realizations",
    "sigma",
    "m0_range",
)


# ------------------------------------------------------------------------------ aggregation
def read_evaluation(path: str | Path) -> dict[str, Any]:
    """The summary entry of one network: the :data:`NETWORK_KEYS` of its evaluation JSON."""
    data = json.loads(Path(path).read_text())
    return {k: data[k] for k in NETWORK_KEYS if k in data}


def read_history(path: str | Path) -> dict[str, Any]:
    """Training summary of one network from its ``history.csv`` (last epoch).

    Keys: ``epochs``, ``final_train_loss``, ``final_val_crb_mean``, ``wall_time_s`` (s, whole
    training), ``samples_per_s`` (median over epochs).
    """
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: empty training history")
    last = rows[-1]
    rates = sorted(float(r["samples_per_s"]) for r in rows if r.get("samples_per_s"))
    out: dict[str, Any] = {
        "epochs": len(rows),
        "final_train_loss": float(last["train_loss"]),
        "wall_time_s": float(last["wall_time_s"]),
    }
    if last.get("best_epoch"):
        best = int(float(last["best_epoch"]))
        out["selected_epoch"] = best
        sel = [r for r in rows if int(float(r["epoch"])) == best]
        if sel and "val_crb_mean" in sel[0]:
            out["selected_val_crb_mean"] = float(sel[0]["val_crb_mean"])
    if "val_crb_mean" in last:
        out["final_val_crb_mean"] = float(last["val_crb_mean"])
    if rates:
        out["samples_per_s"] = rates[len(rates) // 2]
    return out


def read_summary_table(path: str | Path) -> dict[str, Any]:
    """The evaluation's summary table (CSV: ``grid, estimator, parameter, <metrics>...``) as
    ``{grid: {estimator: {parameter: {metric: float}}}}``."""
    out: dict[str, Any] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            grid, est, par = row.pop("grid"), row.pop("estimator"), row.pop("parameter")
            out.setdefault(grid, {}).setdefault(est, {})[par] = {k: _to_float(v) for k, v in row.items()}
    return out


def _to_float(v: str) -> float:
    try:
        return float(v)
    except ValueError:
        return math.nan


def read_invivo_regions(path: str | Path) -> dict[str, Any]:
    """In vivo region statistics (``results/images/invivo/regions.json``, rows ``differences``) as
    ``{region: {"n": voxels, estimator: {parameter: {mean, sd, difference, difference_se}, "negative_m0s": k}}}``
    for the tissue regions (and ``mask``: the whole mask, negative m0s counts only)."""
    data = json.loads(Path(path).read_text())
    tissue = data.get("tissue_regions", {}).get("n_voxels", {})
    out: dict[str, Any] = {}
    for row in data.get("differences", []):
        region = row["region"]
        if region not in tissue and region != "mask":
            continue
        reg = out.setdefault(region, {"n": int(tissue.get(region, row["n"]))})
        est = reg.setdefault(row["estimator"], {})
        negative = row.get("n_negative") if row.get("parameter") == "m0s" else None  # null in other rows (pandas)
        if negative is not None:
            est["negative_m0s"] = int(negative)
        if region != "mask":
            est[row["parameter"]] = {k: _num(row.get(k)) for k in ("mean", "sd", "difference", "difference_se")}
    return out


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def snr_key(snr: float) -> str:
    """Summary key of an SNR: ``SNR50``, ``SNR7.5``."""
    return f"SNR{float(snr):g}"


def read_snr_sweep(path: str | Path) -> dict[str, Any]:
    """The SNR sweep table (``results/evaluate_snr_sweep/sweep.csv``) as
    ``{estimator: {"SNR<s>": {parameter: {statistic: float}}}}``."""
    out: dict[str, Any] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            est, snr, par = row.pop("estimator"), float(row.pop("snr")), row.pop("parameter")
            out.setdefault(est, {}).setdefault(snr_key(snr), {})[par] = {k: _to_float(v) for k, v in row.items()}
    return out


def read_regimes(path: str | Path) -> dict[str, Any]:
    """The regime comparison (``results/compare_regimes/sqrt_crb.json``) keyed ``point1``, ``point2``, ..."""
    data = json.loads(Path(path).read_text())
    return {f"point{i + 1}": row for i, row in enumerate(data["points"])}


def prior_width(spec: Mapping[str, Any]) -> float:
    """Width of a prior's support in SI units (``high - low``; 0 for a fixed value; NaN when the
    numbers are transformed or in other units).

    >>> prior_width({"dist": "uniform", "low": 0.4, "high": 2.5}), prior_width({"dist": "fixed", "value": 1.0})
    (2.1, 0.0)
    """
    if spec.get("dist") == "fixed":
        return 0.0
    if spec.get("transform", "none") != "none" or spec.get("units", "SI") != "SI":
        return math.nan
    return float(spec["high"]) - float(spec["low"])


def informative_std_ratio(ds: Any, priors: Mapping[str, Mapping[str, Any]], estimator: str = "nlls",
                          fraction: float = 0.2) -> dict[str, Any]:
    """Median std/sqrt(CRB) of ``estimator`` per parameter over the grid points where sqrt(CRB) is
    below ``fraction`` of the prior's width (where the data, not the prior bounds, decide the fit):
    an efficient estimator gives about 1 there.  ``points``: how many grid points qualified per
    parameter (``{parameter: int}``)."""
    import numpy as np

    out: dict[str, Any] = {}
    counts: dict[str, int] = {}
    if estimator not in [str(e) for e in ds["estimator"].values]:
        return out
    for p in [str(v) for v in ds["parameter"].values]:
        width = prior_width(priors.get(p, {"dist": "fixed"}))
        sel = ds.sel(estimator=estimator, parameter=p)
        ok = (sel["sqrt_crb"] < fraction * width).values & np.isfinite(sel["std_over_sqrt_crb"].values)
        counts[p] = int(ok.sum())
        out[p] = float(np.median(sel["std_over_sqrt_crb"].values[ok])) if ok.any() else math.nan
    out["points"] = counts
    return out


def summarize(
    evaluations: Mapping[str, str | Path] | None = None,
    histories: Mapping[str, str | Path] | None = None,
    summary_table: str | Path | None = None,
    config: Mapping[str, Any] | None = None,
    invivo_regions: str | Path | None = None,
    snr_sweep: str | Path | None = None,
    regimes: str | Path | None = None,
    grids: Mapping[str, str | Path] | None = None,
    snr_sweep_nc: str | Path | None = None,
    dev_evaluations: Mapping[str, str | Path] | None = None,
    dev_snr_sweep: str | Path | None = None,
    seed_spread: Mapping[str, float] | None = None,
    invivo_seed: int = 0,
    replicate_sweeps: Sequence[str | Path] = (),
) -> dict[str, Any]:
    """Aggregate the evaluation outputs that exist into one summary dictionary.

    ``evaluations`` and ``histories`` map a loss name to its evaluation JSON on the final test set /
    its ``history.csv``; ``invivo_regions`` the in vivo ``regions.json`` (section ``invivo``,
    :func:`read_invivo_regions`); ``snr_sweep`` / ``snr_sweep_nc`` are the final test set's sweep
    table and file, ``regimes`` the regime comparison, ``grids`` maps a grid name to its
    ``evaluate_grid`` NetCDF; missing files are skipped (so a partial run still gives a summary);
    ``config`` holds the configuration values the manuscript quotes (copied as is).

    ``claims`` (:func:`crbnn.evaluate.claims.judge_all`) reads only the evidence of the final test
    set and the grids (``evidence``).  The development set (``dev_evaluations``, ``dev_snr_sweep``)
    goes to the section ``development``, which no verdict reads.  ``replicate_sweeps``: the final
    test set's sweeps of the networks trained with further seeds (``train.seed_replicates``); with
    them the spread over training seeds of each claim's margin enters the verdicts
    (:func:`crbnn.evaluate.claims.seed_spread`), unless ``seed_spread`` is given.
    """
    from crbnn.evaluate import claims as claims_module

    out: dict[str, Any] = {"config": dict(config or {})}
    nets = {k: read_evaluation(p) for k, p in (evaluations or {}).items() if Path(p).exists()}
    if nets:
        out["networks"] = nets
    dev = {k: read_evaluation(p) for k, p in (dev_evaluations or {}).items() if Path(p).exists()}
    if dev or (dev_snr_sweep is not None and Path(dev_snr_sweep).exists()):
        out["development"] = {"networks": dev}
        if dev_snr_sweep is not None and Path(dev_snr_sweep).exists():
            out["development"]["snr_sweep"] = read_snr_sweep(dev_snr_sweep)
    hist = {k: read_history(p) for k, p in (histories or {}).items() if Path(p).exists()}
    if hist:
        out["training"] = hist
    if summary_table is not None and Path(summary_table).exists():
        out["grids"] = read_summary_table(summary_table)
    if invivo_regions is not None and Path(invivo_regions).exists():
        regions = read_invivo_regions(invivo_regions)
        if regions:
            out["invivo"] = regions
    if snr_sweep is not None and Path(snr_sweep).exists():
        out["snr_sweep"] = read_snr_sweep(snr_sweep)
    if regimes is not None and Path(regimes).exists():
        out["regimes"] = read_regimes(regimes)
    from crbnn.evaluate.grid import read_netcdf

    grid_ds = {g: read_netcdf(p) for g, p in (grids or {}).items() if Path(p).exists()}
    eff = {g: informative_std_ratio(ds, out["config"].get("priors", {})) for g, ds in grid_ds.items()}
    if eff:
        out["nlls_efficiency"] = eff
    sweep_ds = read_netcdf(snr_sweep_nc) if snr_sweep_nc is not None and Path(snr_sweep_nc).exists() else None
    out["evidence"] = claims_module.collect_evidence(sweep_ds, grid_ds)
    replicates = [read_netcdf(p) for p in replicate_sweeps if Path(p).exists()]
    if seed_spread is None and sweep_ds is not None and replicates:
        seed_spread = claims_module.seed_spread([sweep_ds, *replicates])
        out["seed_spread"] = {"n_seeds": 1 + len(replicates), "spread": seed_spread}
    raw_regions = (json.loads(Path(invivo_regions).read_text())
                   if invivo_regions is not None and Path(invivo_regions).exists() else None)
    out["claims"] = claims_module.judge_all(out["evidence"], raw_regions, seed_spread, invivo_seed)
    out["headline"] = headline(out)
    return out


def headline(summary: Mapping[str, Any]) -> dict[str, Any]:
    """What the single test-set loss of each network averages, beside the per-SNR picture.

    The final test set draws |M0| ~ U(m0_range) at the training sigma, so its SNR is spread over
    ``snr_range``; ``crb_loss_mean`` is a mixture over that range.  ``by_snr`` classifies the CRB
    network's sweep loss (mean over parameters) at each SNR against the efficiency band
    (prior-leaning, efficient, inefficient or undecided; :func:`crbnn.evaluate.claims.claim_efficiency`).
    """
    nets = summary.get("networks", {})
    out: dict[str, Any] = {}
    any_net = next(iter(nets.values()), {})
    sigma, m0 = any_net.get("sigma"), any_net.get("m0_range")
    if sigma and m0:
        out["snr_range"] = [float(m0[0]) / float(sigma), float(m0[1]) / float(sigma)]
        out["snr_min"], out["snr_max"] = out["snr_range"]
    out["crb_loss_mean"] = {k: v["crb_loss_mean"] for k, v in nets.items() if "crb_loss_mean" in v}
    eff = summary.get("claims", {}).get("efficiency", {}).get("numbers", {})
    out["crb_by_snr"] = eff.get("by_snr", {})
    return out
