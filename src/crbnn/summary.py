"""Headline numbers of a run (``results/summary.json``) and their LaTeX macros (``numbers.tex``).

The summary aggregates what the evaluation wrote (``results/evaluate_network/<loss>.json``,
``results/train_network/<loss>/history.csv``, ``results/figures/summary_table.csv``) plus the
configuration values the manuscript quotes.  :func:`latex_macros` turns every leaf of the summary
into one ``\\newcommand`` (names from the key path, see :func:`macro_name`), plus the short headline
aliases of :data:`HEADLINE_ALIASES`, so that no number in the manuscript is typed by hand.

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
     "claims": {...: bool | float | str},
     "config": {...: number | str | list}}

>>> s = {"networks": {"crb": {"crb_loss_mean": 1.234}}, "config": {"sigma": 0.01}}
>>> print(latex_macros(s).splitlines()[-1])
\\newcommand{\\ConfigSigma}{0.01}
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "HEADLINE_ALIASES",
    "GRID_MAP_CAPTIONS",
    "NETWORK_KEYS",
    "flatten",
    "format_value",
    "latex_escape",
    "latex_grid_figures",
    "latex_macros",
    "latex_prior_table",
    "macro_name",
    "read_evaluation",
    "read_history",
    "read_summary_table",
    "summarize",
]

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
)

#: Short macro names for the headline numbers: alias -> key path in the summary.
HEADLINE_ALIASES = {
    "CRBLossCRB": ("networks", "crb", "crb_loss_mean"),
    "CRBLossMSE": ("networks", "mse", "crb_loss_mean"),
    "CRBLossBiasReduced": ("networks", "bias_reduced", "crb_loss_mean"),
    "SecondsPerVoxelCRB": ("networks", "crb", "seconds_per_voxel"),
    "TrainTimeCRB": ("training", "crb", "wall_time_s"),
    "TrainTimeMSE": ("training", "mse", "wall_time_s"),
    **{
        f"CRBLoss{net}{par}": ("networks", key, "crb_loss", p)
        for net, key in (("CRB", "crb"), ("MSE", "mse"), ("BiasReduced", "bias_reduced"))
        for par, p in (("MzeroS", "m0s"), ("Tone", "T1"), ("TtwoF", "T2f"))
    },
    "ClaimVerdict": ("claims", "verdict"),
    "ClaimTolMean": ("claims", "tolerance_mean"),
    "ClaimTolEach": ("claims", "tolerance_each"),
    "ClaimMinSNR": ("claims", "min_snr"),
    "ClaimNearOne": ("claims", "crb_loss_near_one"),
    "ClaimCRBBeatsMSE": ("claims", "crb_beats_mse"),
    "ClaimMSEOverCRB": ("claims", "mse_over_crb"),
    "ClaimSweepSNRs": ("claims", "sweep_crb_closer_snrs"),
    "ClaimSweepHigh": ("claims", "sweep_crb_closer_high_snr"),
    "SelectedEpochCRB": ("training", "crb", "selected_epoch"),
    **{
        f"RegimeSqrtCRB{pt}{kind}": ("regimes", key, field, "m0s")
        for pt, key in (("Low", "point1"), ("WM", "point2"), ("High", "point3"))
        for kind, field in (("Known", "sqrt_crb"), ("All", "sqrt_crb_all_unknown"))
    },
    "RegimeSqrtCRBTtwoFKnown": ("regimes", "point4", "sqrt_crb", "T2f"),
    "RegimeSqrtCRBTtwoFAll": ("regimes", "point4", "sqrt_crb_all_unknown", "T2f"),
    **{
        f"Sweep{net}Fifty": ("snr_sweep", key, "SNR50", "mean", "mean_loss")
        for net, key in (("CRB", "crb"), ("MSE", "mse"), ("BiasReduced", "bias_reduced"), ("NLLS", "nlls"))
    },
    **{
        f"Sweep{net}FiftyMedian": ("snr_sweep", key, "SNR50", "mean", "median_loss")
        for net, key in (("CRB", "crb"), ("MSE", "mse"), ("BiasReduced", "bias_reduced"), ("NLLS", "nlls"))
    },
    **{
        f"Sweep{net}Ten": ("snr_sweep", key, "SNR10", "mean", "mean_loss")
        for net, key in (("CRB", "crb"), ("MSE", "mse"), ("BiasReduced", "bias_reduced"), ("NLLS", "nlls"))
    },
    **{
        f"NLLSEff{par}": ("nlls_efficiency", "m0s-T1", p)
        for par, p in (("MzeroS", "m0s"), ("Tone", "T1"), ("TtwoF", "T2f"))
    },
}

_DIGITS = ("Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine")
_ABBREVIATIONS = {"crb": "CRB", "mse": "MSE", "nlls": "NLLS", "rmse": "RMSE", "sqrt": "Sqrt"}


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


#: SNRs at and above which the sweep claim is judged (the paper's SNR 50 lies inside).
CLAIM_MIN_SNR = 35.0
#: How far from 1 the CRB network's test-set loss may be: mean over parameters, each parameter.
CLAIM_TOLERANCE_MEAN = 0.2
CLAIM_TOLERANCE_EACH = 0.4


def claims(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Did the paper's claims hold in this run?  Verdicts computed from the other summary sections.

    * ``crb_loss_near_one``: the CRB network's test-set loss (mean over parameters) is within 20 %
      of 1 and every parameter's within 40 %;
    * ``mse_over_crb``: the MSE network's test-set loss divided by the CRB network's;
    * ``crb_beats_mse``: that ratio is above 1;
    * ``sweep_crb_closer_snrs``: the SNRs where the CRB network's mean loss is closer to 1 than the
      MSE network's, and ``sweep_crb_closer_high_snr``: whether that holds at every SNR >= 35;
    * ``verdict``: "held" when all three hold, else "did not hold".
    Missing sections give ``None``.
    """
    nets = summary.get("networks", {})
    out: dict[str, Any] = {"tolerance_mean": CLAIM_TOLERANCE_MEAN, "tolerance_each": CLAIM_TOLERANCE_EACH,
                           "min_snr": CLAIM_MIN_SNR}
    crb, mse = nets.get("crb", {}), nets.get("mse", {})
    if "crb_loss_mean" in crb:
        per = crb.get("crb_loss", {})
        out["crb_loss_near_one"] = bool(abs(crb["crb_loss_mean"] - 1) <= CLAIM_TOLERANCE_MEAN
                                        and all(abs(v - 1) <= CLAIM_TOLERANCE_EACH for v in per.values()))
    if "crb_loss_mean" in crb and "crb_loss_mean" in mse:
        out["mse_over_crb"] = float(mse["crb_loss_mean"] / crb["crb_loss_mean"])
        out["crb_beats_mse"] = bool(out["mse_over_crb"] > 1)
    sweep = summary.get("snr_sweep", {})
    if "crb" in sweep and "mse" in sweep:
        closer, high = [], True
        for key, by_par in sweep["crb"].items():
            snr = float(key[3:])
            c, m = by_par["mean"]["mean_loss"], sweep["mse"][key]["mean"]["mean_loss"]
            better = abs(c - 1) < abs(m - 1)
            if better:
                closer.append(snr)
            if snr >= CLAIM_MIN_SNR and not better:
                high = False
        out["sweep_crb_closer_snrs"] = closer
        out["sweep_crb_closer_high_snr"] = high
    keys = ("crb_loss_near_one", "crb_beats_mse", "sweep_crb_closer_high_snr")
    if all(k in out for k in keys):
        out["verdict"] = "held" if all(out[k] for k in keys) else "did not hold"
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
) -> dict[str, Any]:
    """Aggregate the evaluation outputs that exist into one summary dictionary.

    ``evaluations`` and ``histories`` map a loss name to its evaluation JSON / ``history.csv``;
    ``invivo_regions`` the in vivo ``regions.json`` (section ``invivo``, :func:`read_invivo_regions`);
    ``snr_sweep`` is the sweep table, ``regimes`` the regime comparison, ``grids`` maps a grid name
    to its ``evaluate_grid`` NetCDF (for :func:`informative_std_ratio`); missing files are skipped
    (so a partial run still gives a summary); ``config`` holds the configuration values the
    manuscript quotes (copied as is).  ``claims`` (:func:`claims`) is derived from the rest.
    """
    out: dict[str, Any] = {"config": dict(config or {})}
    nets = {k: read_evaluation(p) for k, p in (evaluations or {}).items() if Path(p).exists()}
    if nets:
        out["networks"] = nets
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
    eff = {}
    for g, p in (grids or {}).items():
        if Path(p).exists():
            from .evaluation import read_netcdf

            eff[g] = informative_std_ratio(read_netcdf(p), out["config"].get("priors", {}))
    if eff:
        out["nlls_efficiency"] = eff
    out["claims"] = claims(out)
    return out


# ---------------------------------------------------------------------------------- macros
def macro_name(*parts: str) -> str:
    """A LaTeX command name (letters only) from key parts: split at non-alphanumerics, capitalize,
    spell out digits, keep known abbreviations upper case.

    >>> macro_name("networks", "crb", "crb_loss", "T2f")
    'NetworksCRBCRBLossTTwof'
    >>> macro_name("grids", "m0s-T1")
    'GridsMZerosTOne'
    """
    words: list[str] = []
    for part in parts:
        for w in re.split(r"[^A-Za-z0-9]+", str(part)):
            if not w:
                continue
            w = _ABBREVIATIONS.get(w.lower(), w)
            w = re.sub(r"\d", lambda m: _DIGITS[int(m.group())], w)
            words.append(w[0].upper() + w[1:])
    name = "".join(words)
    if not name.isalpha():
        raise ValueError(f"cannot make a macro name from {parts!r}")
    return name


def latex_escape(s: str) -> str:
    r"""Escape the LaTeX special characters of a text string.

    >>> latex_escape("m0s_T1 & 5%")
    'm0s\\_T1 \\& 5\\%'
    """
    repl = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
            "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(repl.get(c, c) for c in s)


def format_value(v: Any, digits: int = 3) -> str:
    r"""LaTeX text for one value: ``digits`` significant digits, powers of ten as
    ``\ensuremath{a\times10^{b}}`` outside [1e-3, 1e5), thousands separated by ``{,}`` in integers,
    ``--`` for None/NaN, lists joined by ", ", strings escaped.

    >>> [format_value(x) for x in (313.759, 0.0123456, 3.9e-05, 4000000, True, None, "a_b")]
    ['314', '0.0123', '\\ensuremath{3.9\\times10^{-5}}', '4{,}000{,}000', 'yes', '--', 'a\\_b']
    """
    if v is None:
        return "--"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}".replace(",", "{,}")
    if isinstance(v, float):
        if not math.isfinite(v):
            return "--"
        if v == 0:
            return "0"
        if 1e-3 <= abs(v) < 1e5:
            s = f"{v:.{digits}g}"
            if "e" not in s:
                return s
        mant, exp = f"{v:.{digits - 1}e}".split("e")
        mant = mant.rstrip("0").rstrip(".")
        return rf"\ensuremath{{{mant}\times10^{{{int(exp)}}}}}"
    if isinstance(v, (list, tuple)):
        return ", ".join(format_value(x, digits) for x in v)
    return latex_escape(str(v))


def flatten(d: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterable[tuple[tuple[str, ...], Any]]:
    """``(key path, leaf)`` pairs of a nested mapping, in insertion order (lists are leaves).

    >>> list(flatten({"a": {"b": 1, "c": [2, 3]}}))
    [(('a', 'b'), 1), (('a', 'c'), [2, 3])]
    """
    for k, v in d.items():
        if isinstance(v, Mapping):
            yield from flatten(v, (*prefix, str(k)))
        else:
            yield (*prefix, str(k)), v


def _lookup(d: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for k in path:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d


def latex_macros(summary: Mapping[str, Any], digits: int = 3, raw: Mapping[str, str] | None = None) -> str:
    r"""The macros file: the ``raw`` macros (name -> LaTeX text, not escaped), the
    :data:`HEADLINE_ALIASES` (``--`` where the value is missing), then one ``\newcommand`` per
    leaf of ``summary`` (name from :func:`macro_name` of its key path).

    Raises ValueError when two key paths give the same macro name.
    """
    lines = ["% Generated by crbnn.summary.latex_macros from results/summary.json; do not edit."]
    seen: dict[str, tuple[str, ...]] = {}

    def add(name: str, path: tuple[str, ...], value: Any) -> None:
        if name in seen:
            raise ValueError(f"macro \\{name} from {path} clashes with {seen[name]}")
        seen[name] = path
        lines.append(rf"\newcommand{{\{name}}}{{{format_value(value, digits)}}}")

    for name, text in (raw or {}).items():
        if name in seen or not name.isalpha():
            raise ValueError(f"bad or duplicate macro name {name!r}")
        seen[name] = ("raw",)
        lines.append(rf"\newcommand{{\{name}}}{{{text}}}")
    for alias, path in HEADLINE_ALIASES.items():
        add(alias, path, _lookup(summary, path))
    for path, value in flatten(summary):
        add(macro_name(*path), path, value)
    return "\n".join(lines) + "\n"


#: Captions of the grid-map figures per quantity (the figure rule's ``quantity`` wildcard).
GRID_MAP_CAPTIONS = {
    "bias": (
        "Bias over the grid, in physical units; rows: the estimators (NLLS and the networks), columns: "
        "the estimated parameters."
    ),
    "std_ratio": (
        "Standard deviation over noise realizations divided by the square root of the CRB; rows: the "
        "estimators, columns: the estimated parameters.  1 is efficient; below 1 is possible only for "
        "biased estimators."
    ),
    "sqrt_crb": (
        "Square root of the Cram\\'er-Rao bound over the grid (it does not depend on the estimator); "
        "columns: the estimated parameters."
    ),
}


def latex_grid_figures(grids: Iterable[str], quantities: Iterable[str], folder: str = "figures") -> str:
    r"""LaTeX ``figure`` environments of the grid maps ``<folder>/grid_maps_<quantity>_<grid>.pdf``,
    one per grid and quantity, labelled ``fig:grid:<quantity>:<grid>``.

    >>> print(latex_grid_figures(["m0s-T1"], ["bias"]).splitlines()[2])
    \includegraphics[width=\linewidth]{figures/grid_maps_bias_m0s-T1.pdf}
    """
    out = ["% Generated by crbnn.summary.latex_grid_figures; do not edit."]
    for g in grids:
        for q in quantities:
            cap = GRID_MAP_CAPTIONS.get(q, latex_escape(q))
            out += [
                r"\begin{figure}[tbp]\centering",
                rf"\includegraphics[width=\linewidth]{{{folder}/grid_maps_{q}_{g}.pdf}}",
                rf"\caption{{Grid {latex_escape(g)}: {cap}}}\label{{fig:grid:{q}:{g}}}",
                r"\end{figure}",
            ]
    return "\n".join(out) + "\n"


#: Units of the tissue parameters in the prior table.
PRIOR_UNITS = {"m0s": "", "T1": "s", "T2f": "s", "Rex": "1/s", "T2s": "s", "omega0": "rad/s", "B1": ""}


def prior_text(spec: Mapping[str, Any], digits: int = 3) -> tuple[str, str]:
    r"""(distribution, numbers) of one prior in LaTeX: ``fixed`` -> known value; ``uniform`` ->
    U(low, high); ``loguniform`` -> log-uniform on [low, high]; ``truncnormal`` -> N(mean, std) on
    [low, high]; a reciprocal transform or pi/TR units are stated.

    >>> prior_text({"dist": "truncnormal", "mean": 0.15, "std": 0.15, "low": 0.0, "high": 0.35})
    ('truncated normal', '$\\mathcal{N}$(0.15, 0.15) on [0, 0.35]')
    >>> prior_text({"dist": "fixed", "value": 13.6, "transform": "none", "units": "SI"})
    ('known', '13.6')
    """
    f = lambda k: format_value(spec.get(k), digits)  # noqa: E731
    dist = spec.get("dist", "")
    if dist == "fixed":
        name, text = "known", f("value")
    elif dist == "uniform":
        name, text = "uniform", f"U({f('low')}, {f('high')})"
    elif dist == "loguniform":
        name, text = "log-uniform", f"[{f('low')}, {f('high')}]"
    elif dist == "truncnormal":
        name, text = "truncated normal", rf"$\mathcal{{N}}$({f('mean')}, {f('std')}) on [{f('low')}, {f('high')}]"
    else:
        name, text = latex_escape(str(dist)), ""
    if spec.get("transform", "none") == "reciprocal":
        text += " (of the reciprocal)"
    if spec.get("units", "SI") == "pi/TR":
        text += r" $\times\,\pi/T_R$"
    return name, text


def latex_prior_table(priors: Mapping[str, Mapping[str, Any]], digits: int = 3) -> str:
    r"""A booktabs ``tabular`` of the training priors (``priors.parameters`` of the config): one row
    per parameter with its unit, distribution and numbers (:func:`prior_text`), so the manuscript
    never types a prior by hand.

    >>> print(latex_prior_table({"T1": {"dist": "uniform", "low": 0.4, "high": 2.5}}).splitlines()[4])
    T1 & s & uniform & U(0.4, 2.5) \\
    """
    lines = [r"\begin{tabular}{lllp{0.45\linewidth}}", r"\toprule", r"parameter & unit & distribution & values \\",
             r"\midrule"]
    order = list(PRIOR_UNITS)
    for name in sorted(priors, key=lambda p: order.index(p) if p in order else len(order)):
        spec = priors[name]
        dist, text = prior_text(spec, digits)
        unit = PRIOR_UNITS.get(name, "")
        if spec.get("units", "SI") == "pi/TR":
            unit = ""
        lines.append(rf"{latex_escape(name)} & {latex_escape(unit)} & {dist} & {text} \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def latex_snr_table(sweep: Mapping[str, Any], digits: int = 3) -> str:
    r"""A booktabs ``tabular`` of the SNR sweep: mean CRB-normalized loss (mean over the estimated
    parameters) with its 95 % bootstrap interval, one row per SNR and one column per estimator.

    >>> s = {"crb": {"SNR50": {"mean": {"mean_loss": 1.1, "mean_loss_lo": 1.0, "mean_loss_hi": 1.2}}}}
    >>> print(latex_snr_table(s).splitlines()[4])
    50 & 1.1 [1, 1.2] \\
    """
    from .plots import ESTIMATOR_STYLE, estimator_label

    order = list(ESTIMATOR_STYLE)
    ests = sorted(sweep, key=lambda e: order.index(e) if e in order else len(order))
    snrs = sorted({k for e in ests for k in sweep[e]}, key=lambda k: float(k[3:]))
    lines = [rf"\begin{{tabular}}{{l{'l' * len(ests)}}}", r"\toprule",
             "SNR & " + " & ".join(latex_escape(estimator_label(e)) for e in ests) + r" \\", r"\midrule"]
    for key in snrs:
        cells = []
        for e in ests:
            v = sweep[e].get(key, {}).get("mean", {})
            cells.append(f"{format_value(v.get('mean_loss'), digits)} [{format_value(v.get('mean_loss_lo'), digits)}, "
                         f"{format_value(v.get('mean_loss_hi'), digits)}]" if v else "--")
        lines.append(f"{key[3:]} & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


#: display of the in vivo region table: parameter -> (label, factor, unit)
REGION_TABLE_COLUMNS = {"m0s": ("$m_0^s$", 1.0, ""), "T1": ("$T_1$", 1.0, "s"), "T2f": ("$T_2^f$", 1e3, "ms")}


def latex_region_table(summary: Mapping[str, Any], digits: int = 3, reference: str = "nlls") -> str:
    r"""LaTeX table of the in vivo tissue regions (``summary["invivo"]``): per region and estimator
    mean $\pm$ SD and the paired difference to ``reference`` $\pm$ its standard error for m0s, T1
    and T2f, and the number of negative m0s estimates; a sentence when the section is missing.
    """
    inv = summary.get("invivo")
    regions = [r for r in (inv or {}) if r != "mask"]
    if not regions:
        return "In vivo region statistics were not computed in this run.\n"
    cols = REGION_TABLE_COLUMNS
    lines = [r"\begin{tabular}{ll" + "cc" * len(cols) + "c}", r"\hline",
             r"region ($n$) & estimator & " + " & ".join(
                 rf"\multicolumn{{2}}{{c}}{{{lab}{(' (' + u + ')') if u else ''}}}" for lab, _, u in cols.values()) + r" & $m_0^s<0$ \\",
             " & & " + " & ".join(r"mean $\pm$ SD & $-$NLLS $\pm$ SE" for _ in cols) + r" & \\", r"\hline"]
    for region in regions:
        reg = inv[region]
        ests = [e for e in reg if e != "n"]
        for i, est in enumerate(ests):
            cells = [f"{latex_escape(region)} ({format_value(int(reg['n']))})" if i == 0 else "", latex_escape(est_label(est))]
            for p, (_, factor, _) in cols.items():
                st = reg[est].get(p, {})

                def val(key: str, st: Mapping[str, Any] = st, factor: float = factor) -> str:
                    v = st.get(key)
                    return format_value(None if v is None else float(v) * factor, digits)

                cells.append(rf"{val('mean')} $\pm$ {val('sd')}")
                cells.append("--" if est == reference else rf"{val('difference')} $\pm$ {val('difference_se')}")
            cells.append(format_value(reg[est].get("negative_m0s")))
            lines.append(" & ".join(cells) + r" \\")
        lines.append(r"\hline")
    lines.append(r"\end{tabular}")
    return "\n".join(lines) + "\n"


def est_label(name: str) -> str:
    """Short estimator label for tables."""
    return {"nlls": "NLLS", "mse": "MSE", "crb": "CRB", "bias_reduced": "bias-reduced"}.get(name, name)
