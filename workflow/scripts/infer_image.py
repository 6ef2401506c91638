"""Network maps of one image with sqrt(CRB) and residual at the estimate (rule infer_image).

The fitted nuisance parameters (omega0, B1; Rex and T2s too where the model leaves them unknown) and
the noise sigma come from the NLLS fit of the same image; known parameters are at their known values.
sqrt(CRB) and residual maps cover the voxels NLLS evaluated.
"""

from pathlib import Path

import numpy as np

from crbnn.common.device import resolve_device, set_threads
from crbnn.common.logs import setup_logging
from crbnn.data.basis import load_basis
from crbnn.data.sequence import load_sequence
from crbnn.images.maps import (
    check_model_image,
    network_maps,
    nuisance_of_fit,
    read_coefficient_image,
    read_info,
    read_maps,
    uncertainty_maps,
    write_maps,
)
from crbnn.learn.model_file import load_model
from crbnn.physics.r2sl import R2slTable


def main(snakemake):
    log = setup_logging(snakemake.log)
    set_threads(snakemake.threads)
    seq = load_sequence(snakemake.input.sequence)
    basis = load_basis(snakemake.input.basis)
    model = load_model(snakemake.input.model, expect_basis_sha256=basis.sha256, expect_sequence_sha256=seq.sha256,
                       device=resolve_device(snakemake.params.device))
    image = read_coefficient_image(snakemake.input.coefficients, snakemake.input.mask, rank=basis.rank)
    check_model_image(model, image, basis.sha256)
    maps, seconds = network_maps(model, image)
    nlls_dir = Path(snakemake.input.nlls_info).parent
    fitted_nuisance = [p for p in snakemake.params.fit if p not in maps]
    nlls = read_maps(nlls_dir, ["T1", *fitted_nuisance])
    sigma = read_info(nlls_dir)["sigma"]
    evaluated = np.isfinite(nlls["T1"]) & image.mask
    estimates = {**{p: nlls[p] for p in fitted_nuisance}, **maps}
    extra, sigma, _ = uncertainty_maps(image, estimates, evaluated, seq, basis.u, snakemake.params.nominal,
                                       snakemake.params.bounds, sigma, r2sl=R2slTable.load(snakemake.input.r2sl),
                                       batch_size=snakemake.params.batch_size, estimated=model.meta["estimated"],
                                       nuisance=nuisance_of_fit(snakemake.params.fit, model.meta["estimated"]))
    maps.update(extra)
    info = {"model": snakemake.input.model, "inference_seconds": seconds, "n_mask": int(image.mask.sum()),
            "seconds_per_voxel": seconds / max(int(image.mask.sum()), 1), "n_evaluated": int(evaluated.sum()),
            "sigma": sigma, "sigma_source": "NLLS residuals of the same image (results/images/<image>/nlls/info.json)",
            "nuisance": f"{', '.join(fitted_nuisance)} from the NLLS fit of the same voxels; complex M0 at its best fit",
            "known": {p: v for p, v in snakemake.params.nominal.items() if p not in snakemake.params.fit}}
    write_maps(Path(snakemake.output.info).parent, maps, image.affine, info)
    log.info("%s on %s: %d voxels in %.3f s", snakemake.wildcards.network, snakemake.wildcards.image,
             info["n_mask"], seconds)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
