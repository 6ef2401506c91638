"""Draw a parameter table from the priors, seeded (rule sample_parameters)."""

from crbnn.common.logs import setup_logging
from crbnn.data.datasets import write_parameter_table
from crbnn.data.priors import sample_parameters
from crbnn.data.sequence import load_sequence


def main(snakemake):
    log = setup_logging(snakemake.log)
    p = snakemake.params
    tr = load_sequence(snakemake.input.sequence).tr  # for priors in units of pi/TR
    table = sample_parameters(p.priors, int(p.n), seed=int(p.seed), tr=tr)
    log.info("sampled %d parameter sets with seed %d", table.shape[0], p.seed)
    write_parameter_table(snakemake.output[0], table, seed=int(p.seed))


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
