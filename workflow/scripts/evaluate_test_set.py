"""Per-sample CRB-normalized errors of every estimator on the test set (rule evaluate_test_set).

NLLS uses ``params.nlls`` (solver settings) and ``params.bounds`` (crbnn.config.settings.nlls_bounds).
"""

from crbnn.common.device import resolve_device, set_threads
from crbnn.common.logs import setup_logging
from crbnn.data.basis import load_basis
from crbnn.data.datasets import read_dataset
from crbnn.data.sequence import load_sequence
from crbnn.estimate.nlls import nlls_estimator, worker_processes
from crbnn.evaluate.grid import network_estimator, write_netcdf
from crbnn.evaluate.test_set import noisy_test_set, normalized_test_errors
from crbnn.physics.r2sl import R2slTable


def main(snakemake):
    log = setup_logging(snakemake.log)
    set_threads(1)  # the fits run in worker_processes(device, threads), one torch thread each
    device = resolve_device(snakemake.params.device)
    workers = worker_processes(device, snakemake.threads)
    p, n = snakemake.params, snakemake.params.nlls
    data, attrs = read_dataset(snakemake.input.test, ["parameters", "coefficients", "crb"])
    m = min(int(p.samples), data["coefficients"].shape[0])
    estimated = list(attrs["estimated"])
    cols = [list(attrs["parameter_names"]).index(e) for e in estimated]
    y, m0 = noisy_test_set(data["coefficients"][:m], p.m0_range, p.sigma, p.seed)
    estimators = {}
    for name in p.estimators:
        if name == "nlls":
            seq = load_sequence(snakemake.input.sequence)
            basis = load_basis(snakemake.input.basis)
            r2sl = R2slTable.load(snakemake.input.r2sl)
            f = nlls_estimator(seq, basis.u, n, p.bounds, estimated, r2sl=r2sl, device=device, workers=workers,
                               log=log.info)
            estimators[name] = (f, p.nlls_samples)
        else:
            f, _ = network_estimator(snakemake.input.models[p.networks.index(name)], attrs["basis_sha256"],
                                     attrs["sequence_sha256"], p.batch_size,
                                     data_attrs=attrs, data_path=snakemake.input.test)
            estimators[name] = (f, m)
    ds = normalized_test_errors(y, m0, data["parameters"][:m, cols], data["crb"][:m], estimated, estimators, p.sigma)
    for e in ds["estimator"].values:
        log.info("%s: mean squared normalized error %s, %.3g s/voxel", e,
                 (ds["normalized_error"].sel(estimator=e) ** 2).mean("sample").values.round(3).tolist(),
                 float(ds["time_per_voxel"].sel(estimator=e)))
    write_netcdf(snakemake.output[0], ds)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
