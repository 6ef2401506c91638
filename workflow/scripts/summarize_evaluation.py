"""Summary table of the evaluation (CSV and LaTeX) (rule summarize_evaluation)."""

from crbnn.common.io import atomic_write
from crbnn.common.logs import setup_logging
from crbnn.evaluate.grid import read_netcdf, summary_table
from crbnn.report.tables import latex_summary_table


def main(snakemake):
    log = setup_logging(snakemake.log)
    grids = {g: read_netcdf(path) for g, path in zip(snakemake.params.grids, snakemake.input.grids)}
    table = summary_table(grids, read_netcdf(snakemake.input.test))
    log.info("\n%s", table.to_string())
    with atomic_write(snakemake.output.csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_write(snakemake.output.tex) as tmp:
        tmp.write_text(latex_summary_table(table))


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
