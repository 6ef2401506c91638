"""Simulate one shard of a parameter table: coefficients, Jacobian and CRB (rule simulate_shard)."""

from crbnn.common.device import resolve_device, set_threads
from crbnn.common.logs import setup_logging
from crbnn.data.basis import load_basis
from crbnn.data.datasets import read_parameter_table, shard_rows, write_dataset
from crbnn.data.sequence import check_basis_length, load_sequence
from crbnn.data.simulate import simulate_coefficients
from crbnn.physics.r2sl import R2slTable


def main(snakemake):
    log = setup_logging(snakemake.log)
    set_threads(snakemake.threads)
    p = snakemake.params
    seq = load_sequence(snakemake.input.sequence)
    basis = load_basis(snakemake.input.basis)
    check_basis_length(seq, basis.u, str(snakemake.input.basis))
    table, _ = read_parameter_table(snakemake.input.table)
    rows = table[shard_rows(table.shape[0], int(p.n_shards), int(snakemake.wildcards.shard))]
    log.info("simulating %d of %d rows of %s", rows.shape[0], table.shape[0], snakemake.input.table)
    out = simulate_coefficients(
        seq.alpha,
        seq.trf,
        seq.tr,
        basis.u,
        rows,
        estimated=list(p.estimated),
        nuisance=list(p.nuisance),
        r2sl=R2slTable.load(snakemake.input.r2sl),
        device=resolve_device(p.device),
        batch_size=int(p.batch_size),
    )
    write_dataset(
        snakemake.output[0],
        rows,
        out["coefficients"],
        out["jacobian"],
        out["crb"],
        jacobian_names=[*p.estimated, *p.nuisance],
        estimated=p.estimated,
        nuisance=p.nuisance,
        sequence_sha256=seq.sha256,
        basis_sha256=basis.sha256,
    )


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
