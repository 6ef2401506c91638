"""Public in vivo slice (subspace coefficients) -> NIfTI coefficients and mask (rule build_invivo_image)."""

from crbnn.common.logs import setup_logging
from crbnn.data.inputs import load_invivo_slice, write_coefficient_image


def main(snakemake):
    log = setup_logging(snakemake.log)
    x = load_invivo_slice(snakemake.input[0])
    n_mask = write_coefficient_image(x, snakemake.output.coefficients, snakemake.output.mask, snakemake.params.voxel_size)
    log.info("in vivo slice %s: shape %s, %d voxels in the mask", snakemake.input[0], x.shape, n_mask)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
