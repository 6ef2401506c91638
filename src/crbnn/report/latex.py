r"""LaTeX from the run's summary: one macro per number (``numbers.tex``) and the manuscript's tables.

:func:`latex_macros` turns every leaf of the summary (:mod:`crbnn.evaluate.summary`) into one
``\newcommand`` (names from the key path, see :func:`macro_name`), plus the short headline aliases of
:data:`HEADLINE_ALIASES`, so that no number in the manuscript is typed by hand; the table writers
render priors, the SNR sweep and the in vivo regions.

>>> s = {"networks": {"crb": {"crb_loss_mean": 1.234}}, "config": {"sigma": 0.01}}
>>> [m for m in latex_macros(s).splitlines() if "Sigma" in m]
['\\newcommand{\\ConfigSigma}{\\num{0.01}}']
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from crbnn.common.parameters import DISPLAY_SCALE, DISPLAY_UNITS, LABELS, TISSUE_PARAMETERS, display_unit

# the SNR of the paper's evaluation (one home: crbnn.evaluate.claims), whose sweep results have
# headline aliases (``\Sweep<Net>Fifty``)
from crbnn.evaluate.claims import PAPER_SNR  # noqa: E402

#: The manuscript's short macro name of each parameter the paper estimates (``\CRBLossCRBTone``); a
#: parameter a config does not estimate gets ``--`` in these macros.
PARAMETER_MACROS: dict[str, str] = {"m0s": "MzeroS", "T1": "Tone", "T2f": "TtwoF"}

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
        for p, par in PARAMETER_MACROS.items()
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
        f"Sweep{net}Fifty": ("snr_sweep", key, f"SNR{PAPER_SNR:g}", "mean", "mean_loss")
        for net, key in (("CRB", "crb"), ("MSE", "mse"), ("BiasReduced", "bias_reduced"), ("NLLS", "nlls"))
    },
    **{
        f"Sweep{net}FiftyMedian": ("snr_sweep", key, f"SNR{PAPER_SNR:g}", "mean", "median_loss")
        for net, key in (("CRB", "crb"), ("MSE", "mse"), ("BiasReduced", "bias_reduced"), ("NLLS", "nlls"))
    },
    **{
        f"Sweep{net}Ten": ("snr_sweep", key, "SNR10", "mean", "mean_loss")
        for net, key in (("CRB", "crb"), ("MSE", "mse"), ("BiasReduced", "bias_reduced"), ("NLLS", "nlls"))
    },
    **{
        f"NLLSEff{par}": ("nlls_efficiency", "m0s-T1", p)
        for p, par in PARAMETER_MACROS.items()
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


def significant(v: float, digits: int = 3, exact: bool = False) -> str:
    """``v`` with ``digits`` significant digits, trailing zeros kept (``1.00``, not ``1``), as siunitx
    input: plain in [1e-3, 1e5) while that needs no exponent, otherwise ``<mantissa>e<exponent>``.
    ``exact`` (a configured value, not a measurement): as written, without padding zeros.

    >>> [significant(x) for x in (1.0, 313.759, 0.0123456, 3.9e-05, 86400.0, 2.0)]
    ['1.00', '314', '0.0123', '3.90e-5', '8.64e4', '2.00']
    >>> [significant(x, exact=True) for x in (0.4, 0.0035, 1.25e-05, 40000.0)]
    ['0.4', '0.0035', '1.25e-5', '40000']
    """
    if v == 0:
        return "0"
    if exact:
        s = f"{v:.12g}"
        if "e" in s:
            mant, exp = s.split("e")
            return f"{mant}e{int(exp)}"
        return s
    if 1e-3 <= abs(v) < 1e5:
        s = f"{v:#.{digits}g}"
        if "e" not in s:
            return s.rstrip(".")
    mant, exp = f"{v:.{digits - 1}e}".split("e")
    return f"{mant}e{int(exp)}"


def format_value(v: Any, digits: int = 3, exact: bool = False) -> str:
    r"""LaTeX text for one value, numbers as siunitx ``\num`` (digit grouping, powers of ten and the
    decimal marker are set once, by ``\sisetup`` in the manuscript's preamble): floats with ``digits``
    significant digits kept (:func:`significant`; ``exact``: configured values as written), integers
    exact, numeric lists as ``\numlist``; ``--`` for None/NaN, booleans yes/no, strings escaped.

    >>> [format_value(x) for x in (313.759, 1.0, 3.9e-05, 4000000, True, None, "a_b")]
    ['\\num{314}', '\\num{1.00}', '\\num{3.90e-5}', '\\num{4000000}', 'yes', '--', 'a\\_b']
    >>> format_value([10, 20, 50])
    '\\numlist{10;20;50}'
    """
    if v is None:
        return "--"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return rf"\num{{{v}}}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "--"
        return rf"\num{{{significant(v, digits, exact)}}}"
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            parts = [str(x) if isinstance(x, int) else significant(float(x), digits, exact) for x in v]
            return rf"\numlist{{{';'.join(parts)}}}"
        return ", ".join(format_value(x, digits, exact) for x in v)
    return latex_escape(str(v))


def format_quantity(v: Any, unit: str, digits: int = 3, exact: bool = False) -> str:
    r"""A number with its unit, as siunitx ``\SI{<number>}{<unit>}`` (``unit`` in siunitx macros,
    e.g. ``\milli\second``); ``--`` when the value is missing.

    >>> format_quantity(0.0035 * 1e3, r"\milli\second")
    '\\SI{3.50}{\\milli\\second}'
    """
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "--"
    text = str(v) if isinstance(v, int) and not isinstance(v, bool) else significant(float(v), digits, exact)
    return rf"\SI{{{text}}}{{{unit}}}"


#: siunitx unit of each display unit of :data:`crbnn.common.parameters.DISPLAY_UNITS`
SIUNITX_UNITS = {"s": r"\second", "ms": r"\milli\second", "µs": r"\micro\second", "1/s": r"\per\second",
                 "rad/s": r"\radian\per\second", "": ""}

#: LaTeX symbol of every tissue parameter (one symbol per quantity, figures use the same:
#: :data:`crbnn.common.parameters.LABELS`)
SYMBOLS = {p: LABELS[p] for p in LABELS}


def parameter_quantity(name: str, value: Any, digits: int = 3, exact: bool = False) -> str:
    r"""A tissue-parameter value (SI) in its display unit as ``\SI`` (``\num`` when dimensionless).

    >>> parameter_quantity("T2s", 1.25e-5, exact=True)
    '\\SI{12.5}{\\micro\\second}'
    >>> parameter_quantity("m0s", 0.13)
    '\\num{0.130}'
    """
    unit = DISPLAY_UNITS.get(name, "")
    scaled = None if value is None else float(value) * DISPLAY_SCALE.get(name, 1.0)
    if not unit:
        return format_value(scaled, digits, exact)
    return format_quantity(scaled, SIUNITX_UNITS.get(unit, latex_escape(unit)), digits, exact)


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
        lines.append(rf"\newcommand{{\{name}}}{{{format_value(value, digits, exact=path[0] == 'config')}}}")

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
    from crbnn.evaluate.claims import CLAIM_NAMES, claim_key_text, claim_numbers_text

    out: dict[str, str] = {}
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


def network_macros(network: Mapping[str, Any] | None) -> dict[str, str]:
    r"""Raw macros of the methods' network paragraph from a ``results/train_network/<loss>/network.json``
    (written by the training job: architecture, weight count, the device it ran on): ``\NetWidths``
    (``26--128--...--3``), ``\NetLayers``, ``\NetHidden``, ``\NetResidual`` (a phrase), ``\NetBatchnorm``
    (a phrase), ``\NetActivation``, ``\NetWeights``, ``\HardwareDevice``, ``\HardwareCores``,
    ``\HardwareThreads``.  ``--`` for each when ``network`` is None.

    >>> m = network_macros({"architecture": {"widths": [4, 8, 8, 2], "residual": [[1, 2]], "batchnorm": True,
    ...     "activation": "relu"}, "n_weights": 130, "device": {"type": "cpu", "name": "X", "cpu_count": 2, "threads": 2}})
    >>> m["NetWidths"], m["NetLayers"], m["NetResidual"]
    ('4--8--8--2', '\\num{3}', 'the pre-normalization output of layer 1 is added to that of layer 2')
    """
    keys = ("NetWidths", "NetLayers", "NetHidden", "NetResidual", "NetBatchnorm", "NetActivation", "NetWeights",
            "HardwareDevice", "HardwareCores", "HardwareThreads")
    if not network:
        return {k: "--" for k in keys}
    arch, dev = network.get("architecture", {}), network.get("device", {})
    widths = [int(w) for w in arch.get("widths", [])]
    pairs = [tuple(int(x) for x in p) for p in arch.get("residual", [])]
    if pairs:
        def one(j: int, i: int) -> str:
            src = "the input" if j == 0 else f"the pre-normalization output of layer {j}"
            return f"{src} is added to that of layer {i}"
        residual = "; ".join(one(j, i) for j, i in pairs)
    else:
        residual = "there are no residual connections"
    dtype = dev.get("type", "cpu")
    name = latex_escape(str(dev.get("name", "")))
    device = rf"one GPU ({name})" if dtype == "cuda" else rf"the CPU ({name})"
    return {
        "NetWidths": "--".join(str(w) for w in widths),
        "NetLayers": format_value(max(len(widths) - 1, 0)),
        "NetHidden": format_value(max(len(widths) - 2, 0)),
        "NetResidual": residual,
        "NetBatchnorm": "batch normalization and" if arch.get("batchnorm") else "",
        "NetActivation": latex_escape({"relu": "ReLU", "gelu": "GELU", "silu": "SiLU", "tanh": "tanh",
                                       "elu": "ELU"}.get(str(arch.get("activation")), str(arch.get("activation")))),
        "NetWeights": format_value(network.get("n_weights")),
        "HardwareDevice": device,
        "HardwareCores": format_value(dev.get("cpu_count")),
        "HardwareThreads": format_value(dev.get("threads")),
    }


#: the network input of each ``train.normalization`` (crbnn.learn.training_data.normalize_inputs), in words
NORMALIZATION_TEXT = {
    "first_coefficient": ("the $R$ complex coefficients are divided by the first one, which removes the "
                          "scale and the phase of $M_0$, and split into their real and imaginary parts"),
    "l2": "the $2R$ real and imaginary parts of the coefficients are divided by their Euclidean norm",
}


def method_macros(summary: Mapping[str, Any]) -> dict[str, str]:
    r"""Raw macros of the methods from the summary's ``config`` section: ``\InputNormalization`` (a
    phrase), ``\FineTuneStart`` (a phrase), ``\TRQuantity`` (``\SI`` in ms) and ``\Known<P>`` (the
    known tissue values with their units, e.g. ``\KnownTTwos``).

    >>> m = method_macros({"config": {"tr": 0.0035, "normalization": "l2", "known": {"T2s": 1.25e-5},
    ...                               "bias_reduced": {"init_from_crb": True}}})
    >>> m["TRQuantity"], m["KnownTTwos"]
    ('\\SI{3.5}{\\milli\\second}', '\\SI{12.5}{\\micro\\second}')
    """
    c = summary.get("config", {})
    tr = c.get("tr")
    out = {
        "InputNormalization": NORMALIZATION_TEXT.get(str(c.get("normalization")), latex_escape(str(c.get("normalization")))),
        "FineTuneStart": ("from the weights of the saved CRB network" if c.get("bias_reduced", {}).get("init_from_crb")
                          else "from random weights"),
        "TRQuantity": "--" if tr is None else format_quantity(float(tr) * 1e3, r"\milli\second", exact=True),
    }
    for p in ("Rex", "T2s"):
        out[f"Known{macro_name(p)}"] = parameter_quantity(p, c.get("known", {}).get(p), exact=True)
    return out


def input_macros() -> dict[str, str]:
    r"""Raw macros of the public inputs' provenance (:data:`crbnn.data.inputs.INPUTS`): per input
    (``Seq``: pulse train, ``Basis``, ``Invivo``) the repository, the pinned commit (12 digits) and
    the path (``\nolinkurl``: it breaks lines at ``/``).

    >>> input_macros()["InvivoRepository"]
    '\\nolinkurl{quentin-duchemin/MRF-CRBLoss}'
    """
    from crbnn.data.inputs import INPUTS

    names = {"Seq": "control_MT_v3p2_TR3p5ms_discretized.mat", "Basis": "basis_for_compress.mat",
             "Invivo": "invivo_test_slice.mat"}
    out: dict[str, str] = {}
    for key, name in names.items():
        item = INPUTS[name]
        out[f"{key}Repository"] = rf"\nolinkurl{{{item.repository}}}"  # hyperref: breaks at / and -
        out[f"{key}Commit"] = rf"\texttt{{{item.commit[:12]}}}"
        out[f"{key}Path"] = rf"\nolinkurl{{{item.path}}}"
    return out


#: Captions of the grid-map figures per quantity (the figure rule's ``quantity`` wildcard).
GRID_MAP_CAPTIONS = {
    "bias": (
        "Bias $b$ over the grid, in physical units; rows: the estimators (NLLS and the networks), columns: "
        "the estimated parameters.  Values beyond the colour range are drawn in its end colours and counted "
        "in the colour bar's label."
    ),
    "bias_ratio": (
        "Bias relative to the CRB, $b/\\sqrt{\\mathrm{CRB}}$, over the grid; rows: the estimators, columns: "
        "the estimated parameters.  Values beyond the colour range are drawn in its end colours and counted "
        "in the colour bar's label."
    ),
    "std_ratio": (
        "Standard deviation over noise realizations divided by the square root of the CRB, on a logarithmic "
        "colour scale centred at 1 (efficient); rows: the estimators, columns: the estimated parameters.  "
        "Below 1 is possible only for biased estimators; values beyond the colour range are drawn in its "
        "end colours and counted in the colour bar's label."
    ),
    "sqrt_crb": (
        "Square root of the Cram\\'er-Rao bound over the grid (it does not depend "
        "on the estimator); columns: the estimated parameters."
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
            name = grid_label(g)
            out += [
                r"\begin{figure}[tbp]\centering",
                rf"\includegraphics[width=\linewidth]{{{folder}/grid_maps_{q}_{g}.pdf}}",
                rf"\caption{{Grid {name}: {cap}}}\label{{fig:grid:{q}:{g}}}",
                r"\end{figure}",
            ]
    return "\n".join(out) + "\n"


def grid_label(grid: str) -> str:
    r"""A grid's name in symbols: ``m0s-T1`` -> ``$m_0^s\times T_1$`` (the name itself when its parts are
    not parameters).

    >>> grid_label("m0s-T1")
    '$m_0^s\\times T_1$'
    """
    parts = grid.split("-")
    if all(x in LABELS for x in parts):
        return "$" + r"\times ".join(LABELS[x].strip("$") for x in parts) + "$"
    return latex_escape(grid)


def grid_figure_refs(grids: Sequence[str], quantities: Sequence[str]) -> str:
    r"""``Figures~\ref{a}, \ref{b} and \ref{c}``: every grid-map figure of :func:`latex_grid_figures`
    (``Figure~\ref{...}`` for one; ``--`` for none).

    >>> grid_figure_refs(["g"], ["bias", "std_ratio"])
    'Figures~\\ref{fig:grid:bias:g} and~\\ref{fig:grid:std_ratio:g}'
    """
    refs = [rf"\ref{{fig:grid:{q}:{g}}}" for g in grids for q in quantities]
    if not refs:
        return "--"
    if len(refs) == 1:
        return f"Figure~{refs[0]}"
    return "Figures~" + ", ".join(refs[:-1]) + f" and~{refs[-1]}"


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
     & NLLS & -- & \num{1.01} $\pm$ \num{0.0200} & -- \\
    """
    out = ["% Generated by crbnn.report.latex.latex_phantom_tables; do not edit."]
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
