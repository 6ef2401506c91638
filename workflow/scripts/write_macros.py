"""LaTeX macros of the summary, the methods' network/hardware/input macros, the tables and the grid-map
figure environments (rule write_macros; crbnn.evaluate.summary, crbnn.report.latex, crbnn.report.tables)."""

import json

from crbnn.common.io import atomic_write
from crbnn.common.logs import setup_logging
from crbnn.images.regions import SE_BLOCK_VOXELS
from crbnn.report.latex import (
    PAPER_SNR,
    format_value,
    grid_figure_refs,
    input_macros,
    method_macros,
    latex_grid_figures,
    latex_macros,
    network_macros,
)
from crbnn.report.tables import (
    latex_claims_table,
    latex_phantom_tables,
    latex_prior_table,
    latex_region_table,
    latex_snr_table,
)


def main(snakemake):
    log = setup_logging(snakemake.log)
    with open(snakemake.input.summary) as f:
        summary = json.load(f)
    p = snakemake.params
    inp = snakemake.input
    networks = {}
    for loss, path in zip(p.get("losses", []), inp.get("networks", [])):
        with open(path) as f:
            networks[loss] = json.load(f)
    # the architecture of the CRB network (every network shares it; the bias-reduced one is fine-tuned from it)
    net = networks.get("crb") or next(iter(networks.values()), None)
    raw = {"ManuscriptTitle": p.title, "ManuscriptAuthors": p.authors, **network_macros(net), **input_macros(),
           **method_macros(summary),
           "SEBlockVoxels": format_value(SE_BLOCK_VOXELS), "PaperSNR": format_value(PAPER_SNR),
           "GridFigureRefs": grid_figure_refs(p.grids, p.quantities)}
    text = latex_macros(summary, digits=p.digits, raw=raw)
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
    phantoms = {}
    for image, path in zip(p.get("phantoms", []), inp.get("phantom_regions", [])):
        with open(path) as f:
            phantoms[image] = json.load(f).get("rows", [])
    with atomic_write(snakemake.output.phantom_tables) as tmp:
        tmp.write_text(latex_phantom_tables(phantoms, digits=p.digits))
    with atomic_write(snakemake.output.claims) as tmp:
        tmp.write_text(latex_claims_table(summary.get("claims", {})))
    log.info("%d macros; claims: %s", text.count(r"\newcommand"), summary.get("claims", {}).get("line"))


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
