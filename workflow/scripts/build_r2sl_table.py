"""Build the linearized saturation table R2sl on the configured grid (rule build_r2sl_table)."""

from crbnn.common.logs import setup_logging
from crbnn.physics.r2sl import R2slTable


def main(snakemake):
    setup_logging(snakemake.log)
    R2slTable.build(**snakemake.params.grid).save(snakemake.output[0])


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
