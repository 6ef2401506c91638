"""Whether and how the workflow builds the manuscript PDF (``manuscript.enabled``, ``.engine``).

The decision is made once, when the workflow is parsed (``workflow/rules/manuscript.smk``):

* ``enabled: false``: no PDF.
* ``enabled: true``: the PDF is a target; a missing TeX engine is an error before any job runs.
* ``enabled: auto`` (default): the PDF is a target when its engine is available; otherwise it is
  left out of the DAG, everything else is built, and the workflow prints one warning line naming
  the install command (:func:`decide_pdf`).

Engines: ``pdflatex``, ``lualatex``, ``xelatex`` through latexmk (TeX Live), or ``tectonic``
(self-contained; from conda-forge in ``envs/manuscript.yaml``, so ``--sdm conda`` brings it; it
downloads its TeX bundle on first use).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass

#: Debian/Ubuntu packages of TeX Live that build the manuscript with latexmk (the Makefile's
#: ``TEXLIVE_PACKAGES`` holds the same list; tests/test_manuscript.py checks).
TEXLIVE_PACKAGES = (
    "latexmk",
    "texlive-latex-base",
    "texlive-latex-recommended",
    "texlive-latex-extra",
    "texlive-fonts-recommended",
    "texlive-science",  # siunitx: the manuscript's number and unit format
)
#: The pinned tectonic of envs/manuscript.yaml.
TECTONIC_SPEC = "tectonic=0.15.0"
#: latexmk flag per engine; tectonic is run directly.
LATEXMK_FLAGS = {"pdflatex": "-pdf", "lualatex": "-pdflua", "xelatex": "-pdfxe"}
ENGINES = (*LATEXMK_FLAGS, "tectonic")
PDF = "results/manuscript/manuscript.pdf"


class ManuscriptError(RuntimeError):
    """The manuscript cannot be built as configured (unknown engine, required engine missing)."""


@dataclass(frozen=True)
class PdfDecision:
    """Outcome of :func:`decide_pdf`: ``build`` the PDF or not; ``warning`` (one line) when skipped."""

    build: bool
    warning: str | None = None


def normalize_enabled(value: bool | str) -> str:
    """``manuscript.enabled`` as one of ``"auto"``, ``"true"``, ``"false"`` (booleans accepted).

    >>> normalize_enabled(True), normalize_enabled("auto"), normalize_enabled(False)
    ('true', 'auto', 'false')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    v = str(value).strip().lower()
    if v not in ("auto", "true", "false"):
        raise ManuscriptError(f"manuscript.enabled must be auto, true or false, got {value!r}")
    return v


def required_executables(engine: str) -> list[str]:
    """Programs the engine needs on PATH.

    >>> required_executables("pdflatex"), required_executables("tectonic")
    (['latexmk', 'pdflatex'], ['tectonic'])
    """
    if engine == "tectonic":
        return ["tectonic"]
    if engine in LATEXMK_FLAGS:
        return ["latexmk", engine]
    raise ManuscriptError(f"unknown manuscript.engine {engine!r}; one of {list(ENGINES)}")


def install_hint(engine: str) -> str:
    """How to get the engine (one line).

    >>> install_hint("tectonic")
    'conda install -c conda-forge tectonic=0.15.0 (or run with --sdm conda)'
    """
    if engine == "tectonic":
        return f"conda install -c conda-forge {TECTONIC_SPEC} (or run with --sdm conda)"
    return (
        "apt-get install --no-install-recommends " + " ".join(TEXLIVE_PACKAGES)
        + " (Debian/Ubuntu; as root `make tex`), or set manuscript.engine: tectonic and run with --sdm conda"
    )


def decide_pdf(
    enabled: bool | str,
    engine: str,
    conda: bool = False,
    which: Callable[[str], str | None] = shutil.which,
) -> PdfDecision:
    """Decide whether the PDF is a target of this run.

    ``conda``: jobs run in the conda environments (``--sdm conda``); ``envs/manuscript.yaml``
    then provides tectonic.  ``which`` finds a program on PATH (``shutil.which``).  Raises
    :class:`ManuscriptError` when ``enabled`` is true and the engine is missing.

    >>> decide_pdf("auto", "pdflatex", which=lambda exe: None).build
    False
    >>> decide_pdf("auto", "tectonic", conda=True, which=lambda exe: None)
    PdfDecision(build=True, warning=None)
    >>> decide_pdf(False, "pdflatex", which=lambda exe: "/usr/bin/" + exe)
    PdfDecision(build=False, warning=None)
    """
    mode = normalize_enabled(enabled)
    exes = required_executables(engine)
    if mode == "false":
        return PdfDecision(False)
    if conda and engine == "tectonic":
        return PdfDecision(True)
    missing = [exe for exe in exes if which(exe) is None]
    if not missing:
        return PdfDecision(True)
    if mode == "true":
        raise ManuscriptError(
            f"manuscript.enabled is true but {', '.join(missing)} not found on PATH; install: "
            f"{install_hint(engine)}; or set manuscript.enabled: auto to skip the PDF"
        )
    return PdfDecision(
        False,
        f"manuscript PDF skipped ({', '.join(missing)} not found; everything else was built); "
        f"to get {PDF}: {install_hint(engine)}, then rerun",
    )


def engine_command(engine: str, tex: str, executable: str | None = None) -> list[str]:
    """The command that builds ``tex`` into a PDF in its folder.

    >>> engine_command("xelatex", "m.tex", "/usr/bin/latexmk")
    ['/usr/bin/latexmk', '-pdfxe', '-interaction=nonstopmode', '-halt-on-error', '-file-line-error', 'm.tex']
    >>> engine_command("tectonic", "m.tex", "tectonic")
    ['tectonic', '--keep-logs', '--outdir', '.', 'm.tex']
    """
    exe = executable or required_executables(engine)[0]
    if engine == "tectonic":
        return [exe, "--keep-logs", "--outdir", ".", tex]
    flag = LATEXMK_FLAGS[engine]
    return [exe, flag, "-interaction=nonstopmode", "-halt-on-error", "-file-line-error", tex]


# ------------------------------------------------------------------ checks of a built manuscript
#: LaTeX log lines that mean the PDF is wrong although it was written
_LOG_PROBLEMS = (
    r"LaTeX Warning: Reference `[^']*' on page \d+ undefined",
    r"LaTeX Warning: Citation `[^']*' on page \d+ undefined",
    r"LaTeX Warning: There were undefined references",
    r"Package natbib Warning: Citation `[^']*' on page \d+ undefined",
    r"Package natbib Warning: There were undefined citations",
    r"! Undefined control sequence",
    r"LaTeX Error: [^\n]*",
    r"Package siunitx Error: [^\n]*",
)


def latex_log_problems(log: str) -> list[str]:
    """The lines of a LaTeX ``.log`` that say the document is incomplete: an undefined reference or
    citation, an undefined control sequence (macro), a LaTeX or siunitx error.

    >>> latex_log_problems("LaTeX Warning: Reference `fig:x' on page 3 undefined on input line 9.")
    ["LaTeX Warning: Reference `fig:x' on page 3 undefined"]
    >>> latex_log_problems("Output written on manuscript.pdf (9 pages).")
    []
    """
    import re

    flat = log.replace("\n", "")  # TeX wraps long log lines at 79 characters
    out: list[str] = []
    for pattern in _LOG_PROBLEMS:
        text = flat if "Warning" in pattern else log
        out += [m.group(0) for m in re.finditer(pattern, text)]
    return out


def unreferenced_labels(sources: list[str]) -> list[str]:
    r"""The figure and table labels (``\label{fig:...}``, ``\label{tab:...}``) of the LaTeX
    ``sources`` (the manuscript and its generated inputs) that no ``\ref`` cites.

    >>> unreferenced_labels([r"\label{fig:a}\label{tab:b} see Figure~\ref{fig:a}"])
    ['tab:b']
    """
    import re

    text = "\n".join(re.sub(r"(?<!\\)%.*", "", s) for s in sources)
    labels = re.findall(r"\\label\{((?:fig|tab):[^}]*)\}", text)
    cited = set(re.findall(r"\\(?:ref|autoref|cref)\{([^}]*)\}", text))
    return [lab for lab in labels if lab not in cited]
