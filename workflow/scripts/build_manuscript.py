"""The manuscript PDF with latexmk or tectonic (rule build_manuscript).

Copies manuscript/*.tex/.bib, the generated macros, tables and figure PDFs into a fresh build folder
(figures under figures/), runs the engine there (crbnn.report.manuscript.engine_command) and moves the PDF
onto the output atomically.
"""

import shutil
import subprocess
from pathlib import Path

from crbnn.common.io import atomic_write
from crbnn.common.logs import setup_logging
from crbnn.report.manuscript import engine_command, install_hint, required_executables


def main(snakemake):
    log = setup_logging(snakemake.log)
    engine = snakemake.params.engine
    exe = required_executables(engine)[0]
    path = shutil.which(exe)
    if path is None:
        raise SystemExit(
            f"build_manuscript: {exe} not found on PATH. Install: {install_hint(engine)}; "
            "or set manuscript.enabled: auto (skips the PDF) or false."
        )
    inp = snakemake.input
    build = Path(snakemake.params.build_dir)
    shutil.rmtree(build, ignore_errors=True)
    (build / "figures").mkdir(parents=True)
    for src in (inp.tex, inp.bib, inp.numbers, inp.grid_figures, inp.priors, inp.regions, inp.snr_table, inp.phantom_tables,
                inp.claims, inp.table):
        shutil.copy2(src, build / Path(src).name)
    for fig in inp.figures:
        shutil.copy2(fig, build / "figures" / Path(fig).name)
    tex = Path(inp.tex).name
    cmd = engine_command(engine, tex, path)
    log.info("running %s in %s", " ".join(cmd), build)
    proc = subprocess.run(cmd, cwd=build, capture_output=True, text=True)
    log.info("%s output:\n%s\n%s", exe, proc.stdout, proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"build_manuscript: {exe} failed (exit {proc.returncode}); see {build / Path(tex).with_suffix('.log')}")
    with atomic_write(snakemake.output.pdf) as tmp:
        shutil.copy2(build / Path(tex).with_suffix(".pdf"), tmp)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
