"""Concatenate the shards of one simulated data set (rule merge_shards)."""

from crbnn.common.logs import setup_logging
from crbnn.data.datasets import merge_datasets


def main(snakemake):
    log = setup_logging(snakemake.log)
    merge_datasets(list(snakemake.input), snakemake.output[0])
    log.info("merged %d shards into %s", len(snakemake.input), snakemake.output[0])


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
