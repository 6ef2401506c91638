"""Write the parameter table of one evaluation grid (rule build_grid)."""

from crbnn.grids import make_grid, write_grid
from crbnn.logging_utils import setup_logging


def main(snakemake):
    log = setup_logging(snakemake.log)
    p = snakemake.params
    grid = make_grid(p.name, p.axes, p.fixed)
    log.info("grid %s: axes %s, shape %s, fixed %s", grid.name, grid.axis_names, grid.shape, grid.fixed)
    write_grid(snakemake.output[0], grid)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
