r"""LaTeX from the run's summary: one macro per number (``numbers.tex``) and the manuscript's tables.

:func:`latex_macros` turns every leaf of the summary (:mod:`crbnn.evaluate.summary`) into one
``\newcommand`` (names from the key path, see :func:`macro_name`), plus the short headline aliases of
:data:`HEADLINE_ALIASES`, so that no number in the manuscript is typed by hand; the table writers
render priors, the SNR sweep and the in vivo regions.

>>> s = {"networks": {"crb": {"crb_loss_mean": 1.234}}, "config": {"sigma": 0.01}}
>>> [m for m in latex_macros(s).splitlines() if "Sigma" in m]
['\\newcommand{\\ConfigSigma}{0.01}']
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from crbnn.common.parameters import DISPLAY_SCALE, DISPLAY_UNITS, LABELS, TISSUE_PARAMETERS, display_unit

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
    "FinalSNRMin": ("headline", "snr_min"),
    "FinalSNRMax": ("headline", "snr_max"),
    "ClaimMSEOverCRB": ("claims", "superiority", "numbers", "ratio_at_paper_snr"),
    "ClaimEfficientSNRs": ("claims", "efficiency", "numbers", "efficient_snrs"),
    "ClaimCRBLowerSNRs": ("claims", "superiority", "numbers", "snrs_crb_lower"),
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
    lines = ["% Generated by crbnn.report.latex.latex_macros from results/summary.json; do not edit."]
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
    for path, value in flatten({k: v for k, v in summary.items() if k not in MACRO_SKIP}):
        add(macro_name(*path), path, value)
    for name, text in claim_macros(summary.get("claims", {})).items():
        if name in seen:
            raise ValueError(f"macro \\{name} clashes with {seen[name]}")
        seen[name] = ("claims",)
        lines.append(rf"\newcommand{{\{name}}}{{{text}}}")
    return "\n".join(lines) + "\n"


#: Summary sections not turned into one macro per leaf: the claims' evidence (thousands of numbers,
#: read by the verdicts), the claims (their own macros: :func:`claim_macros`) and the development set
#: (which the manuscript does not report as results).
MACRO_SKIP: tuple[str, ...] = ("evidence", "claims", "development")

#: How each efficiency class of the CRB network's loss at an SNR reads in a sentence.
_BAND_WORDS = {"prior-leaning": "below the efficiency band (leaning on the prior, biased)",
               "efficient": "inside the efficiency band", "inefficient": "above the efficiency band (inefficient)",
               "undecided": "not decided by its interval (it straddles an edge of the band)"}


def claim_macros(claims: Mapping[str, Any]) -> dict[str, str]:
    r"""Macros of the claims (LaTeX text, escaped): per claim ``\Claim<Name>Verdict``,
    ``\Claim<Name>Criterion``, ``\Claim<Name>Numbers``, ``\Claim<Name>Reason``; ``\ClaimsLine``
    (every claim with its verdict), ``\ClaimsBySNR`` (where over SNR the CRB network is
    prior-leaning, efficient or inefficient, as a sentence), ``\ClaimsAbstract`` (one sentence per
    claim).  Missing claims give ``--``.

    >>> m = claim_macros({"efficiency": {"name": "efficiency", "claim": "c", "verdict": "held", "criterion": "k",
    ...                                  "reason": "r", "numbers": {"by_snr": {"SNR10": "prior-leaning"}}}})
    >>> m["ClaimEfficiencyVerdict"], m["ClaimsBySNR"][:25]
    ('held', 'At SNR 10 the CRB network')
    """
    from crbnn.evaluate.claims import CLAIM_NAMES, PAPER_SNR, claim_key_text, claim_numbers_text

    out: dict[str, str] = {"ClaimPaperSNR": format_value(PAPER_SNR)}
    sentences = []
    for name in CLAIM_NAMES:
        v = claims.get(name)
        key = macro_name("claim", name)
        if not isinstance(v, Mapping) or "verdict" not in v:
            for part in ("Verdict", "Criterion", "Numbers", "Reason"):
                out[f"{key}{part}"] = "--"
            continue
        numbers = claim_numbers_text(v)
        out[f"{key}Verdict"] = latex_escape(v["verdict"])
        out[f"{key}Criterion"] = latex_escape(v["criterion"])
        out[f"{key}Numbers"] = latex_escape(numbers)
        out[f"{key}Reason"] = latex_escape(v["reason"])
        sentences.append(f"{latex_escape(v['claim'][0].upper() + v['claim'][1:])}: \\emph{{{latex_escape(v['verdict'])}}} "
                         f"({latex_escape(claim_key_text(v))}).")
    out["ClaimsLine"] = latex_escape(str(claims.get("line", "--")))
    out["ClaimsAbstract"] = " ".join(sentences) or "--"
    by_snr = claims.get("efficiency", {}).get("numbers", {}).get("by_snr", {}) if isinstance(claims.get("efficiency"), Mapping) else {}
    groups: dict[str, list[str]] = {}
    for key, cls in sorted(by_snr.items(), key=lambda kv: float(kv[0][3:])):
        groups.setdefault(cls, []).append(key[3:])
    parts = [f"at SNR {', '.join(snrs)} the CRB network's mean loss is {_BAND_WORDS.get(cls, cls)}"
             for cls, snrs in groups.items()]
    out["ClaimsBySNR"] = (latex_escape("; ".join(parts)[0].upper() + "; ".join(parts)[1:]) + ".") if parts else "--"
    return out


def latex_claims_table(claims: Mapping[str, Any]) -> str:
    """The manuscript's table of the claims (``results/manuscript/claims.tex``): per claim its
    verdict, the criterion fixed in advance and the numbers with their 95 % intervals."""
    from crbnn.evaluate.claims import CLAIM_NAMES, claim_numbers_text

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
            "\\caption{The paper's claims, judged one by one on the final test set and the test grids at SNR 50 "
            "(criteria fixed before the numbers; 95\\,\\% bootstrap intervals).}\\label{tab:claims}\n"
            "\\begin{tabular}{>{\\raggedright\\arraybackslash}p{0.2\\linewidth}p{0.09\\linewidth}"
            ">{\\raggedright\\arraybackslash}p{0.63\\linewidth}}\n\\toprule\n"
            "Claim & Verdict & Criterion and numbers \\\\\n\\midrule\n" + body + "\n\\bottomrule\n"
            "\\end{tabular}\n\\end{table}\n")


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
    out = ["% Generated by crbnn.report.latex.latex_grid_figures; do not edit."]
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
    order = list(TISSUE_PARAMETERS)
    for name in sorted(priors, key=lambda p: order.index(p) if p in order else len(order)):
        spec = priors[name]
        dist, text = prior_text(spec, digits)
        unit = display_unit(name)
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


#: display of the in vivo region table: parameter -> (label, factor, unit), from crbnn.common.parameters
REGION_TABLE_COLUMNS = {p: (LABELS[p], DISPLAY_SCALE[p], DISPLAY_UNITS[p]) for p in ("m0s", "T1", "T2f")}


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
