"""Numerical phantom: ground-truth maps and simulated coefficient images (rule build_phantom)."""

from pathlib import Path

from crbnn.common.logs import setup_logging
from crbnn.common.seeds import derive_seed
from crbnn.data.basis import load_basis
from crbnn.data.sequence import load_sequence
from crbnn.images.phantom import make_phantom, simulate_phantom, write_phantom
from crbnn.physics.r2sl import R2slTable


def main(snakemake):
    log = setup_logging(snakemake.log)
    s = snakemake.params.settings
    kind = snakemake.wildcards.phantom
    seq = load_sequence(snakemake.input.sequence)
    basis = load_basis(snakemake.input.basis)
    phantom = make_phantom(kind, s, known=snakemake.params.known)
    seed = derive_seed(s["seed"], kind)
    clean, noisy, sigma = simulate_phantom(phantom, seq, basis.u, s["snr"], seed,
                                           r2sl=R2slTable.load(snakemake.input.r2sl), batch_size=s["batch_size"])
    out = dict(snakemake.output)
    out["truth"] = str(Path(snakemake.output.truth[0]).parent)
    write_phantom(phantom, clean, noisy, sigma, out, seed, s["snr"])
    log.info("phantom %s: %s, %d voxels, sigma %.4g (SNR %s), seed %d", kind, phantom.shape,
             int(phantom.mask.sum()), sigma, s["snr"], seed)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
