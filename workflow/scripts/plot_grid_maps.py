"""Figure grid_maps_<quantity>_<grid>: bias, std/sqrt(CRB) or sqrt(CRB) maps (rule plot_grid_maps)."""

from crbnn.common.logs import setup_logging
from crbnn.evaluate.grid import read_netcdf
from crbnn.report.plots import plot_grid_maps, save_figure, set_style


def main(snakemake):
    setup_logging(snakemake.log)
    p = snakemake.params
    set_style(p.font_scale)
    fig = plot_grid_maps(read_netcdf(snakemake.input[0]), snakemake.wildcards.quantity,
                         bias_percentile=p.bias_percentile, std_ratio_limit=p.std_ratio_limit)
    save_figure(fig, [snakemake.output.png, snakemake.output.pdf], dpi=p.dpi)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
