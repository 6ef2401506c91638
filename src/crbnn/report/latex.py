r"""LaTeX from the run's summary: one macro per number (``numbers.tex``) and the manuscript's tables.

:func:`latex_macros` turns every leaf of the summary (:mod:`crbnn.evaluate.summary`) into one
``\newcommand`` (names from the key path, see :func:`macro_name`), plus the short headline aliases of
:data:`HEADLINE_ALIASES`, so that no number in the manuscript is typed by hand; the table writers (priors, the SNR sweep,
the headline table, the in vivo regions and the phantoms) live in :mod:`crbnn.report.tables`.

>>> s = {"networks": {"crb": {"crb_loss_mean": 1.234}}, "config": {"sigma": 0.01}}
>>> [m for m in latex_macros(s).splitlines() if "Sigma" in m]
['\\newcommand{\\ConfigSigma}{\\num{0.01}}']
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from crbnn.common.parameters import DISPLAY_SCALE, DISPLAY_UNITS, LABELS

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
    from crbnn.evaluate.claims import CLAIM_NAMES
    from crbnn.report.claims_text import claim_key_text, claim_numbers_text

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
