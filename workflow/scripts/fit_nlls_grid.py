"""NLLS fits of the noisy grid data that evaluate_grid compares (rule fit_nlls_grid).

The noisy coefficients are regenerated exactly as crbnn.evaluate.grid.evaluate_grid draws them (same
seed, |M0|, sigma), restricted to the documented NLLS subset (first nlls.grid_realizations
realizations of every nlls.grid_stride-th point); their hash is stored so evaluate_grid can check.
The box bounds come as ``params.bounds`` (crbnn.config.settings.nlls_bounds, as for every NLLS fit).
"""

import numpy as np

from crbnn.common.device import resolve_device, set_threads
from crbnn.common.io import sha256_arrays, write_h5
from crbnn.common.logs import setup_logging
from crbnn.data.basis import load_basis
from crbnn.data.datasets import read_dataset, read_parameter_table
from crbnn.data.test_grids import read_axes
from crbnn.data.sequence import load_sequence
from crbnn.estimate.nlls import fit_nlls_with_settings, worker_processes
from crbnn.evaluate.grid import grid_subset
from crbnn.physics.r2sl import R2slTable


def main(snakemake):
    log = setup_logging(snakemake.log)
    set_threads(1)  # the fits run in worker_processes(device, threads), one torch thread each
    device = resolve_device(snakemake.params.device)
    workers = worker_processes(device, snakemake.threads)
    p, n = snakemake.params, snakemake.params.nlls
    seq = load_sequence(snakemake.input.sequence)
    basis = load_basis(snakemake.input.basis)
    data, attrs = read_dataset(snakemake.input.data, ["coefficients"])
    _, tattrs = read_parameter_table(snakemake.input.table)
    shape = tuple(len(v) for _, v in read_axes(tattrs))
    y, mask, k = grid_subset(data["coefficients"], shape, realizations=p.realizations, M0_abs=p.M0_abs,
                             sigma=p.sigma, seed=p.seed, random_phase=p.random_phase,
                             max_realizations=n["grid_realizations"], stride=n["grid_stride"])
    log.info("NLLS on %d voxels (%d points x %d realizations)", len(y), int(mask.sum()), k)
    res = fit_nlls_with_settings(y, seq, basis.u, n, p.bounds, r2sl=R2slTable.load(snakemake.input.r2sl),
                                 device=device, workers=workers, log=log.info)
    estimated = list(attrs["estimated"])
    write_h5(
        snakemake.output[0],
        {"estimates": res.get(estimated), "theta": res.theta, "M0": res.M0, "cost": res.cost,
         "iterations": res.iterations, "converged": res.converged.astype(np.uint8), "mask": mask.astype(np.uint8)},
        {"data_sha256": sha256_arrays(y), "time_per_voxel": res.time_per_voxel, "estimated": estimated,
         "fit": list(res.names), "realizations": k, "stride": n["grid_stride"],
         "basis_sha256": basis.sha256, "sequence_sha256": seq.sha256},
    )
    log.info("converged %d / %d; %.3f s per voxel", int(res.converged.sum()), len(y), res.time_per_voxel)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
