"""Write the parameter table of one evaluation grid (rule build_grid)."""

from crbnn.common.logs import setup_logging
from crbnn.data.test_grids import make_grid, write_grid


def main(snakemake):
    log = setup_logging(snakemake.log)
    p = snakemake.params
    grid = make_grid(p.name, p.axes, p.fixed)
    log.info("grid %s: axes %s, shape %s, fixed %s", grid.name, grid.axis_names, grid.shape, grid.fixed)
    write_grid(snakemake.output[0], grid)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
