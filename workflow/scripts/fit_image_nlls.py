"""NLLS maps of one image with sqrt(CRB), residual and the noise sigma (rule fit_image_nlls)."""

from pathlib import Path

from crbnn.common.device import resolve_device, set_threads
from crbnn.common.logs import setup_logging
from crbnn.data.basis import load_basis
from crbnn.data.sequence import load_sequence
from crbnn.estimate.nlls import worker_processes
from crbnn.images.maps import nlls_maps, read_coefficient_image, select_voxels, write_maps
from crbnn.physics.r2sl import R2slTable


def main(snakemake):
    log = setup_logging(snakemake.log)
    set_threads(1)  # the fits run in worker_processes(device, threads), one torch thread each
    seq = load_sequence(snakemake.input.sequence)
    basis = load_basis(snakemake.input.basis)
    image = read_coefficient_image(snakemake.input.coefficients, snakemake.input.mask, rank=basis.rank)
    v = snakemake.params.voxels
    evaluated = select_voxels(image.mask, v["stride"], v["box"])
    log.info("%s: %d mask voxels, NLLS on %d (stride %d, box %s)", snakemake.input.coefficients,
             int(image.mask.sum()), int(evaluated.sum()), v["stride"], v["box"])
    device = resolve_device(snakemake.params.device)
    workers = worker_processes(device, snakemake.threads)
    maps, info = nlls_maps(image, evaluated, seq, basis.u, snakemake.params.nlls, snakemake.params.bounds,
                           r2sl=R2slTable.load(snakemake.input.r2sl), device=device, workers=workers,
                           estimated=snakemake.config["model"]["estimated"])
    info.update({"n_mask": int(image.mask.sum()), "n_invalid": image.n_invalid, "voxels": v})
    write_maps(Path(snakemake.output.info).parent, maps, image.affine, info)
    log.info("NLLS %.3f s/voxel, sigma %.4g", info["seconds_per_voxel"], info["sigma"])


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
