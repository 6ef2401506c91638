"""Basis from a dictionary simulated from the priors with the configured pulse train (rule compute_basis)."""

from crbnn.common.device import resolve_device, set_threads
from crbnn.common.logs import setup_logging
from crbnn.data.basis import compute_basis_from_priors, save_basis
from crbnn.data.sequence import load_sequence
from crbnn.physics.r2sl import R2slTable


def main(snakemake):
    log = setup_logging(snakemake.log)
    set_threads(snakemake.threads)
    p = snakemake.params
    seq = load_sequence(snakemake.input.sequence)
    basis = compute_basis_from_priors(
        seq,
        p.priors,
        rank=p.rank,
        n=p.n,
        seed=p.seed,
        r2sl=R2slTable.load(snakemake.input.r2sl),
        batch_size=p.batch_size,
        device=resolve_device(p.device),
    )
    log.info("computed basis of rank %d from %d signals", basis.rank, p.n)
    save_basis(basis, snakemake.output[0], source="computed", sequence_sha256=seq.sha256)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
