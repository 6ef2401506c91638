"""Figure snr_sweep: every estimator against the CRB over SNR (rule plot_snr_sweep)."""

from crbnn.common.logs import setup_logging
from crbnn.evaluate.grid import read_netcdf
from crbnn.report.plots import plot_snr_sweep, save_figure, set_style


def main(snakemake):
    setup_logging(snakemake.log)
    set_style(snakemake.params.font_scale)
    fig = plot_snr_sweep(read_netcdf(snakemake.input[0]))
    save_figure(fig, [snakemake.output.png, snakemake.output.pdf], dpi=snakemake.params.dpi)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
