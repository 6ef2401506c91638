r"""The manuscript's LaTeX tables from the run's results: priors, the SNR sweep, the headline table,
the in vivo tissue regions, the phantoms' regions and the claims (rule write_macros and summarize_evaluation).

Numbers are formatted by :func:`crbnn.report.latex.format_value` (siunitx); the parameters of the region
tables are the estimated ones (``model.estimated``), any number of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from crbnn.common.parameters import DISPLAY_SCALE, DISPLAY_UNITS, LABELS, TISSUE_PARAMETERS, display_unit
from crbnn.evaluate.claims import PAPER_SNR
from crbnn.report.latex import SIUNITX_UNITS, format_value, grid_label, latex_escape


def latex_claims_table(claims: Mapping[str, Any]) -> str:
    """The manuscript's table of the claims (``results/manuscript/claims.tex``): per claim its
    verdict, the criterion fixed in advance and the numbers with their 95 % intervals."""
    from crbnn.evaluate.claims import CLAIM_NAMES
    from crbnn.report.claims_text import claim_numbers_text

    rows = []
    for name in CLAIM_NAMES:
        v = claims.get(name)
        if not isinstance(v, Mapping) or "verdict" not in v:
            continue
        rows.append(f"{latex_escape(v['claim'])} & \\textbf{{{latex_escape(v['verdict'])}}} & "
                    f"\\emph{{Criterion:}} {latex_escape(v['criterion'])}.  \\emph{{Numbers:}} "
                    f"{latex_escape(claim_numbers_text(v))}. \\\\")
    body = "\n\\midrule\n".join(rows) if rows else r"\multicolumn{3}{c}{no claims judged} \\"
    return ("\\begin{table}[tbp]\n\\centering\\footnotesize\n"
            f"\\caption{{The paper's claims, judged one by one on the final test set and the test grids at SNR {PAPER_SNR:g} "
            "(criteria fixed before the numbers; 95\\,\\% bootstrap intervals).}\\label{tab:claims}\n"
            "\\begin{tabular}{>{\\raggedright\\arraybackslash}p{0.2\\linewidth}p{0.09\\linewidth}"
            ">{\\raggedright\\arraybackslash}p{0.63\\linewidth}}\n\\toprule\n"
            "Claim & Verdict & Criterion and numbers \\\\\n\\midrule\n" + body + "\n\\bottomrule\n"
            "\\end{tabular}\n\\end{table}\n")


def prior_text(spec: Mapping[str, Any], digits: int = 3, scale: float = 1.0) -> tuple[str, str]:
    r"""(distribution, numbers) of one prior in LaTeX, the numbers times ``scale`` (SI to the display
    unit) as configured (:func:`significant` ``exact``): ``fixed`` -> known value; ``uniform`` ->
    U(low, high); ``loguniform`` -> log-uniform on [low, high]; ``truncnormal`` -> N(mean, std) on
    [low, high]; a reciprocal transform or pi/TR units are stated.

    >>> prior_text({"dist": "truncnormal", "mean": 0.15, "std": 0.15, "low": 0.0, "high": 0.35})
    ('truncated normal', '$\\mathcal{N}$(\\num{0.15}, \\num{0.15}) on [\\num{0}, \\num{0.35}]')
    >>> prior_text({"dist": "fixed", "value": 1.25e-5, "transform": "none", "units": "SI"}, scale=1e6)
    ('known', '\\num{12.5}')
    """
    def f(k: str) -> str:
        v = spec.get(k)
        return format_value(None if v is None else float(v) * scale, digits, exact=True)

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
    per parameter with its symbol, display unit (siunitx), distribution and numbers in that unit
    (:func:`prior_text`), so the manuscript never types a prior by hand.

    >>> print(latex_prior_table({"T2f": {"dist": "uniform", "low": 0.02, "high": 0.25}}).splitlines()[4])
    $T_2^f$ & \si{\milli\second} & uniform & U(\num{20}, \num{250}) \\
    """
    lines = [r"\begin{tabular}{lllp{0.5\linewidth}}", r"\toprule", r"parameter & unit & distribution & values \\",
             r"\midrule"]
    order = list(TISSUE_PARAMETERS)
    for name in sorted(priors, key=lambda p: order.index(p) if p in order else len(order)):
        spec = priors[name]
        per_tr = spec.get("units", "SI") == "pi/TR"
        reciprocal = spec.get("transform", "none") == "reciprocal"
        scale = 1.0 if (per_tr or reciprocal) else DISPLAY_SCALE.get(name, 1.0)
        dist, text = prior_text(spec, digits, scale=scale)
        unit = "" if per_tr else (DISPLAY_UNITS.get(name, "") if not reciprocal else display_unit(name))
        unit_tex = rf"\si{{{SIUNITX_UNITS[unit]}}}" if unit in SIUNITX_UNITS and unit else latex_escape(unit)
        lines.append(rf"{LABELS.get(name, latex_escape(name))} & {unit_tex} & {dist} & {text} \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def latex_snr_table(sweep: Mapping[str, Any], digits: int = 3) -> str:
    r"""A booktabs ``tabular`` of the SNR sweep: mean CRB-normalized loss (mean over the estimated
    parameters) with its 95 % bootstrap interval, one row per SNR and one column per estimator.

    >>> s = {"crb": {"SNR50": {"mean": {"mean_loss": 1.1, "mean_loss_lo": 1.0, "mean_loss_hi": 1.2}}}}
    >>> print(latex_snr_table(s).splitlines()[4])
    50 & \num{1.10} [\num{1.00}, \num{1.20}] \\
    """
    from crbnn.report.plots import ESTIMATOR_STYLE, estimator_label

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


#: columns of the manuscript's summary table: CSV column of crbnn.evaluate.grid.summary_table -> header
SUMMARY_TABLE_COLUMNS = {
    "mean_normalized_loss": r"mean CRB-normalized loss",
    "median_abs_bias_over_sqrt_crb": r"median $|\mathrm{bias}|/\sqrt{\mathrm{CRB}}$",
    "median_std_over_sqrt_crb": r"median $\mathrm{SD}/\sqrt{\mathrm{CRB}}$",
}
#: the test-set column of that table (one noise draw per test sample)
SUMMARY_TEST_COLUMN = "test_mean_sq_normalized_error"


def latex_summary_table(table: Any, digits: int = 3) -> str:
    r"""The manuscript's summary table (booktabs) of :func:`crbnn.evaluate.grid.summary_table`: one
    block per grid (mean CRB-normalized loss, median |bias|/sqrt(CRB), median SD/sqrt(CRB) per
    estimator and parameter), then a block ``test set`` holding the one-draw mean squared normalized
    error (in the loss column; the other columns need several noise draws per sample: ``--``).
    Parameters by their symbol, estimators by their display name, numbers as ``\num``.

    >>> import pandas as pd
    >>> t = pd.DataFrame({"grid": ["g"], "estimator": ["crb"], "parameter": ["T1"], "mean_normalized_loss": [1.0],
    ...                   "median_abs_bias_over_sqrt_crb": [0.1], "median_std_over_sqrt_crb": [0.9],
    ...                   "time_per_voxel_s": [1e-6], "test_mean_sq_normalized_error": [1.2]})
    >>> print(latex_summary_table(t).splitlines()[4])
    g & CRB network & $T_1$ & \num{1.00} & \num{0.100} & \num{0.900} \\
    """
    from crbnn.report.plots import estimator_label

    cols = list(SUMMARY_TABLE_COLUMNS)
    lines = [r"\begin{tabular}{lll" + "r" * len(cols) + "}", r"\toprule",
             "set & estimator & parameter & " + " & ".join(SUMMARY_TABLE_COLUMNS.values()) + r" \\"]

    def label(p: str) -> str:
        return LABELS.get(p, latex_escape(p))

    def num(v: Any) -> str:
        return format_value(None if v is None else float(v), digits)

    for g, sub in table.groupby("grid", sort=False):
        lines.append(r"\midrule")
        for i, row in enumerate(sub.itertuples(index=False)):
            r = row._asdict()
            lines.append(" & ".join([grid_label(str(g)) if i == 0 else "", latex_escape(estimator_label(r["estimator"])),
                                     label(r["parameter"]), *(num(r[c]) for c in cols)]) + r" \\")
    if SUMMARY_TEST_COLUMN in table:
        first = table.drop_duplicates(["estimator", "parameter"])
        lines.append(r"\midrule")
        for i, row in enumerate(first.itertuples(index=False)):
            r = row._asdict()
            lines.append(" & ".join(["test set, one draw" if i == 0 else "", latex_escape(estimator_label(r["estimator"])),
                                     label(r["parameter"]), num(r[SUMMARY_TEST_COLUMN]), "--", "--"]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def region_table_columns(parameters: Iterable[str]) -> dict[str, tuple[str, float, str]]:
    """Columns of the region tables: parameter -> (label, factor, unit), from crbnn.common.parameters,
    in tissue order.

    >>> list(region_table_columns(["T1", "m0s"]))
    ['m0s', 'T1']
    """
    wanted = set(parameters)
    return {p: (LABELS[p], DISPLAY_SCALE[p], DISPLAY_UNITS[p]) for p in TISSUE_PARAMETERS if p in wanted}


def latex_region_table(summary: Mapping[str, Any], digits: int = 3, reference: str = "nlls") -> str:
    r"""LaTeX table of the in vivo tissue regions (``summary["invivo"]``): per region and estimator
    mean $\pm$ SD over the region's voxels and the mean paired difference to ``reference`` $\pm$ its
    block standard error (:func:`crbnn.images.regions.block_standard_error`) for each estimated parameter
    (``summary["config"]["estimated"]``, else those in the statistics), and the number of the region's
    voxels with a negative m0s estimate; a sentence when the section is missing.
    """
    inv = summary.get("invivo")
    regions = [r for r in (inv or {}) if r != "mask"]
    if not regions:
        return "In vivo region statistics were not computed in this run.\n"
    found = {p for r in regions for e, st in inv[r].items() if e != "n" for p in st}
    cols = region_table_columns(summary.get("config", {}).get("estimated") or found)

    def head(lab: str, u: str) -> str:
        unit = rf" (\si{{{SIUNITX_UNITS[u]}}})" if u in SIUNITX_UNITS and u else ""
        return rf"\multicolumn{{2}}{{c}}{{{lab}{unit}}}"

    lines = [r"\begin{tabular}{ll" + "cc" * len(cols) + "c}", r"\toprule",
             r"region ($n$) & estimator & " + " & ".join(head(lab, u) for lab, _, u in cols.values())
             + r" & $m_0^s<0$ \\",
             " & & " + " & ".join(r"mean $\pm$ SD & $-$NLLS $\pm$ SE" for _ in cols) + r" & (voxels) \\", r"\midrule"]
    for k, region in enumerate(regions):
        reg = inv[region]
        order = list(_ESTIMATOR_ORDER)
        ests = sorted((e for e in reg if e != "n"), key=lambda e: order.index(e) if e in order else len(order))
        if k:
            lines.append(r"\midrule")
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
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


#: what each phantom is, for its table caption
PHANTOM_CAPTIONS = {
    "vials": "numerical vial phantom",
    "brain": "brain-like numerical phantom (white matter, gray matter, CSF; smooth $B_1$ and $\\omega_0$ fields)",
}


def latex_phantom_tables(phantoms: Mapping[str, Sequence[Mapping[str, Any]]], digits: int = 3) -> str:
    r"""LaTeX ``table`` environments, one per phantom (``phantoms``: image name -> the ``rows`` of its
    ``results/images/<image>/regions.json``), labelled ``tab:phantom:<image>``: per region the true
    value and, per estimator, the mean $\pm$ SD over the region's voxels of each parameter with a true
    value in the rows (the estimated ones) in display units.  Regions without a true value (whole-mask percentile rows) are left out.

    >>> rows = [{"estimator": "nlls", "region": "vial1", "parameter": "T1", "n": 9, "mean": 1.01, "sd": 0.02, "truth": 1.0}]
    >>> print(latex_phantom_tables({"vials": rows}).splitlines()[8])
     & NLLS & \num{1.01} $\pm$ \num{0.0200} \\
    """
    out = ["% Generated by crbnn.report.tables.latex_phantom_tables; do not edit."]
    for image, rows in phantoms.items():
        rows = [r for r in rows if r.get("truth") is not None and r.get("region") != "mask"]
        if not rows:
            continue
        cols = region_table_columns(r["parameter"] for r in rows)
        regions = list(dict.fromkeys(r["region"] for r in rows))
        ests = list(dict.fromkeys(r["estimator"] for r in rows))
        cell = {(r["region"], r["estimator"], r["parameter"]): r for r in rows}

        def head(lab: str, u: str) -> str:
            return lab + (rf" (\si{{{SIUNITX_UNITS[u]}}})" if u in SIUNITX_UNITS and u else "")

        cap = PHANTOM_CAPTIONS.get(image, latex_escape(image))
        out += [r"\begin{table}[tbp]\centering\footnotesize",
                rf"\caption{{Per region of the {cap}: the true value and, per estimator, mean $\pm$ SD over the "
                rf"region's voxels ($n$: the region's voxels; NLLS may fit a subset of them).}}\label{{tab:phantom:{image}}}",
                r"\begin{tabular}{ll" + "c" * len(cols) + "}", r"\toprule",
                "region ($n$) & estimator & " + " & ".join(head(lab, u) for lab, _, u in cols.values()) + r" \\",
                r"\midrule"]
        for k, region in enumerate(regions):
            if k:
                out.append(r"\midrule")
            n = max((int(cell[(region, e, p)]["n"]) for e in ests for p in cols if (region, e, p) in cell), default=None)
            truth = []
            for p, (_, factor, _) in cols.items():
                r = next((cell[(region, e, p)] for e in ests if (region, e, p) in cell), None)
                truth.append(format_value(None if r is None else float(r["truth"]) * factor, digits))  # float32 maps
            out.append(f"{latex_escape(str(region))} ({format_value(n)}) & truth & " + " & ".join(truth) + r" \\")
            for e in ests:
                cells = []
                for p, (_, factor, _) in cols.items():
                    r = cell.get((region, e, p))
                    if r is None:
                        cells.append("--")
                        continue
                    mean, sd = r.get("mean"), r.get("sd")
                    cells.append(rf"{format_value(None if mean is None else float(mean) * factor, digits)} $\pm$ "
                                 rf"{format_value(None if sd is None else float(sd) * factor, digits)}")
                out.append(f" & {latex_escape(est_label(e))} & " + " & ".join(cells) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out) + "\n"


#: table order of the estimators (the figures' order, crbnn.report.plots.ESTIMATOR_STYLE)
_ESTIMATOR_ORDER = ("nlls", "mse", "crb", "bias_reduced")


def est_label(name: str) -> str:
    """Short estimator label for tables."""
    return {"nlls": "NLLS", "mse": "MSE", "crb": "CRB", "bias_reduced": "bias-reduced"}.get(name, name)
