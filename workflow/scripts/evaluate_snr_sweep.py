"""Every estimator against the CRB at several SNRs on the test set (rule evaluate_snr_sweep).

NLLS uses ``params.nlls`` (solver settings) and ``params.bounds`` (crbnn.config.settings.nlls_bounds).
"""

from crbnn.common.device import resolve_device, set_threads
from crbnn.common.io import atomic_write
from crbnn.common.logs import setup_logging
from crbnn.data.basis import load_basis
from crbnn.data.datasets import read_dataset
from crbnn.data.sequence import load_sequence
from crbnn.estimate.nlls import nlls_estimator, worker_processes
from crbnn.evaluate.grid import network_estimator, write_netcdf
from crbnn.evaluate.snr_sweep import SweepEstimator, evaluate_snr_sweep, sweep_table
from crbnn.physics.r2sl import R2slTable


def main(snakemake):
    log = setup_logging(snakemake.log)
    set_threads(1)  # the fits run in worker_processes(device, threads), one torch thread each
    p, s = snakemake.params, snakemake.params.sweep
    device = resolve_device(p.device)
    data, attrs = read_dataset(snakemake.input.test, ["parameters", "coefficients", "crb"])
    m = min(int(s["samples"]), data["coefficients"].shape[0])
    estimated = list(attrs["estimated"])
    cols = [list(attrs["parameter_names"]).index(e) for e in estimated]
    estimators = {}
    for name in p.estimators:
        if name == "nlls":
            if s["nlls_samples"] == 0:
                continue
            seq = load_sequence(snakemake.input.sequence)
            f = nlls_estimator(seq, load_basis(snakemake.input.basis).u, p.nlls, p.bounds, estimated,
                               r2sl=R2slTable.load(snakemake.input.r2sl), device=device,
                               workers=worker_processes(device, snakemake.threads), log=log.info)
            estimators[name] = SweepEstimator(f, s["nlls_samples"], s["nlls_realizations"])
        else:
            f, _ = network_estimator(snakemake.input.models[p.networks.index(name)], attrs["basis_sha256"],
                                     attrs["sequence_sha256"], p.batch_size,
                                     data_attrs=attrs, data_path=snakemake.input.test)
            estimators[name] = SweepEstimator(f)
    ds = evaluate_snr_sweep(data["coefficients"][:m], data["parameters"][:m, cols], data["crb"][:m], estimated,
                            estimators, snrs=s["snrs"], sigma=p.sigma, realizations=s["realizations"], seed=p.seed,
                            n_boot=s["n_boot"], log=log.info)
    write_netcdf(snakemake.output.nc, ds)
    with atomic_write(snakemake.output.csv) as tmp:
        sweep_table(ds).to_csv(tmp, index=False)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
