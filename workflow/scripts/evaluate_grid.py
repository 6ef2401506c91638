"""Bias, std, sqrt(CRB) and CRB-normalized loss of every estimator on one grid (rule evaluate_grid)."""

from crbnn.common.device import set_threads
from crbnn.common.io import read_h5, reading_intermediate
from crbnn.common.logs import setup_logging
from crbnn.common.parameters import UNITS
from crbnn.data.datasets import read_dataset, read_parameter_table
from crbnn.data.test_grids import read_axes
from crbnn.evaluate.grid import EstimatorSpec, Precomputed, evaluate_grid, network_estimator, write_netcdf


def main(snakemake):
    log = setup_logging(snakemake.log)
    set_threads(snakemake.threads)
    p = snakemake.params
    data, attrs = read_dataset(snakemake.input.data, ["parameters", "coefficients", "crb"])
    _, tattrs = read_parameter_table(snakemake.input.table)
    estimated = list(attrs["estimated"])
    estimators = {}
    for name in p.estimators:
        if name == "nlls":
            with reading_intermediate(snakemake.input.nlls):  # a damaged fit names itself and its rebuild command
                fit, fattrs, _ = read_h5(snakemake.input.nlls)
            if list(fattrs["estimated"]) != estimated:
                raise ValueError(f"NLLS fit has parameters {fattrs['estimated']}, the grid {estimated}")
            estimators[name] = EstimatorSpec(
                Precomputed(fit["estimates"], fattrs["data_sha256"]), max_realizations=int(fattrs["realizations"]),
                stride=int(fattrs["stride"]), time_per_voxel=float(fattrs["time_per_voxel"]))
        else:
            f, _ = network_estimator(snakemake.input.models[p.networks.index(name)], attrs["basis_sha256"],
                                     attrs["sequence_sha256"], p.batch_size,
                                     data_attrs=attrs, data_path=snakemake.input.data)
            estimators[name] = EstimatorSpec(f)
    ds = evaluate_grid(data["coefficients"], data["parameters"], data["crb"], estimated, read_axes(tattrs),
                       estimators, realizations=p.realizations, M0_abs=p.M0_abs, sigma=p.sigma, seed=p.seed,
                       random_phase=p.random_phase, units=UNITS, log=log.info)
    ds.attrs["grid"] = snakemake.wildcards.grid
    write_netcdf(snakemake.output[0], ds)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
