"""The manuscript PDF with latexmk (rule build_manuscript).

Copies manuscript/*.tex/.bib, the generated macros, tables and figure PDFs into a fresh build folder
(figures under figures/), runs latexmk there and moves the PDF onto the output atomically.
"""

import shutil
import subprocess
from pathlib import Path

from crbnn.io import atomic_write
from crbnn.logging_utils import setup_logging

ENGINE_FLAGS = {"pdflatex": "-pdf", "lualatex": "-pdflua", "xelatex": "-pdfxe"}


def main(snakemake):
    log = setup_logging(snakemake.log)
    latexmk = shutil.which("latexmk")
    if latexmk is None:
        raise SystemExit(
            "build_manuscript: latexmk not found on PATH. Install the TeX Live packages listed in "
            "README.md (Debian: apt-get install latexmk texlive-latex-base texlive-latex-recommended "
            "texlive-latex-extra texlive-fonts-recommended) or set manuscript.enabled: false."
        )
    inp = snakemake.input
    build = Path(snakemake.params.build_dir)
    shutil.rmtree(build, ignore_errors=True)
    (build / "figures").mkdir(parents=True)
    for src in (inp.tex, inp.bib, inp.numbers, inp.grid_figures, inp.priors, inp.regions, inp.snr_table, inp.table):
        shutil.copy2(src, build / Path(src).name)
    for fig in inp.figures:
        shutil.copy2(fig, build / "figures" / Path(fig).name)
    tex = Path(inp.tex).name
    cmd = [latexmk, ENGINE_FLAGS[snakemake.params.engine], "-interaction=nonstopmode", "-halt-on-error", "-file-line-error", tex]
    log.info("running %s in %s", " ".join(cmd), build)
    proc = subprocess.run(cmd, cwd=build, capture_output=True, text=True)
    log.info("latexmk output:\n%s\n%s", proc.stdout, proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"build_manuscript: latexmk failed (exit {proc.returncode}); see {build / Path(tex).with_suffix('.log')}")
    with atomic_write(snakemake.output.pdf) as tmp:
        shutil.copy2(build / Path(tex).with_suffix(".pdf"), tmp)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
