"""Figure error_distribution: per-sample normalized errors on the test set (rule plot_error_distribution)."""

from crbnn.common.logs import setup_logging
from crbnn.evaluate.grid import read_netcdf
from crbnn.report.plots import plot_error_distribution, save_figure, set_style


def main(snakemake):
    setup_logging(snakemake.log)
    p = snakemake.params
    set_style(p.font_scale)
    fig = plot_error_distribution(read_netcdf(snakemake.input[0]), limit=p.error_limit)
    save_figure(fig, [snakemake.output.png, snakemake.output.pdf], dpi=p.dpi)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
