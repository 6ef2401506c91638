"""Figure learning_curves: CRB-normalized validation loss of every network (rule plot_learning_curves)."""

import pandas as pd

from crbnn.common.logs import setup_logging
from crbnn.report.plots import plot_learning_curves, save_figure, set_style


def main(snakemake):
    setup_logging(snakemake.log)
    p = snakemake.params
    set_style(p.font_scale)
    histories = {loss: pd.read_csv(path) for loss, path in zip(p.networks, snakemake.input.histories)}
    continues = {"bias_reduced": "crb"} if p.init_from_crb else {}
    fig = plot_learning_curves(histories, continues=continues)
    save_figure(fig, [snakemake.output.png, snakemake.output.pdf], dpi=p.dpi)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
