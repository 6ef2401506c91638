"""First R columns of the public or computed basis, checked against the pulse train (rule build_basis)."""

from crbnn.common.logs import setup_logging
from crbnn.data.basis import load_basis, save_basis
from crbnn.data.sequence import check_basis_length, load_sequence


def main(snakemake):
    log = setup_logging(snakemake.log)
    seq = load_sequence(snakemake.input.sequence)
    basis = load_basis(snakemake.input.source, rank=snakemake.params.rank)
    check_basis_length(seq, basis.u, str(snakemake.input.source))
    log.info("basis %s: N=%d, R=%d, sha256 %s", snakemake.input.source, basis.n_pulses, basis.rank, basis.sha256)
    save_basis(basis, snakemake.output[0], source=snakemake.params.source, sequence_sha256=seq.sha256)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
