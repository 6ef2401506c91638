"""LaTeX macros of the summary and the grid-map figure environments (rule write_macros; crbnn.evaluate.summary)."""

import json

from crbnn.common.io import atomic_write
from crbnn.common.logs import setup_logging
from crbnn.report.latex import (
    latex_claims_table,
    latex_grid_figures,
    latex_macros,
    latex_prior_table,
    latex_region_table,
    latex_snr_table,
)


def main(snakemake):
    log = setup_logging(snakemake.log)
    with open(snakemake.input.summary) as f:
        summary = json.load(f)
    p = snakemake.params
    text = latex_macros(summary, digits=p.digits, raw={"ManuscriptTitle": p.title, "ManuscriptAuthors": p.authors})
    with atomic_write(snakemake.output.numbers) as tmp:
        tmp.write_text(text)
    with atomic_write(snakemake.output.grid_figures) as tmp:
        tmp.write_text(latex_grid_figures(p.grids, p.quantities))
    with atomic_write(snakemake.output.priors) as tmp:
        tmp.write_text(latex_prior_table(summary["config"].get("priors", {}), digits=p.digits))
    with atomic_write(snakemake.output.regions) as tmp:
        tmp.write_text(latex_region_table(summary, digits=p.digits))
    with atomic_write(snakemake.output.snr_table) as tmp:
        tmp.write_text(latex_snr_table(summary.get("snr_sweep", {}), digits=p.digits))
    with atomic_write(snakemake.output.claims) as tmp:
        tmp.write_text(latex_claims_table(summary.get("claims", {})))
    log.info("%d macros; claims: %s", text.count(r"\newcommand"), summary.get("claims", {}).get("line"))


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
