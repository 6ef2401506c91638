"""NLLS on the in vivo slice: time per voxel with a dictionary start (and the CRB network's start).

Uses the resources of a run (``--run``: a directory holding ``resources/{sequence,basis,r2sl}.h5``
and ``resources/invivo/``, e.g. after ``snakemake resources/invivo/coefficients.nii.gz ...``) and,
when present, its trained CRB network:

    python benchmarks/nlls_invivo.py --run . [--voxels 2000] [--workers 2]
        [--fit m0s,T1,T2f,omega0,B1] [--nominal Rex=13.6,T2s=12.5e-6] [--ftol 1e-6 --xtol 1e-8]
        [--fit m0s,T1,T2f,Rex,T2s,omega0,B1 --bounds Rex=2:30,T2s=5e-6:2.1e-5 --nominal Rex=12]

``--tiny`` builds those resources from the public inputs (crbnn.data.inputs.cached_inputs()) in a
temporary folder and fits 2 voxels on 1 worker: seconds, to check that the script runs (tests).

The solver settings come from ``--config`` (section ``nlls``); ``--fit``, ``--nominal``, ``--ftol``,
``--xtol``, ``--max-iter`` override them (e.g. the 5-parameter model with Rex and T2s known).
Prints wall seconds per voxel on ``--workers`` processes, median LM iterations and the projected
time of the full slice (voxels drawn at random, seeded).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from crbnn.config.settings import bounds_from_priors
from crbnn.data.basis import load_basis, save_basis
from crbnn.data.inputs import cached_inputs, load_invivo_slice, write_coefficient_image
from crbnn.data.sequence import load_sequence, save_sequence
from crbnn.estimate.nlls import dictionary_axes, fit_nlls
from crbnn.images.maps import read_coefficient_image
from crbnn.learn.model_file import load_model, predict
from crbnn.physics.r2sl import R2slTable, default_table


def build_tiny_run(run: Path, cfg: dict) -> None:
    """``run/resources/{sequence,basis,r2sl}.h5`` and ``run/resources/invivo/`` from the public inputs."""
    data = cached_inputs()
    res = run / "resources"
    (res / "invivo").mkdir(parents=True)
    seq = load_sequence(data / "control_MT_v3p2_TR3p5ms_discretized.mat", tr=3.5e-3)
    save_sequence(seq, res / "sequence.h5")
    save_basis(load_basis(data / "basis_for_compress.mat", rank=13), res / "basis.h5", source="public", sequence_sha256=seq.sha256)
    default_table().save(res / "r2sl.h5")
    x = load_invivo_slice(data / "invivo_test_slice.mat")
    write_coefficient_image(x, res / "invivo" / "coefficients.nii.gz", res / "invivo" / "mask.nii.gz",
                            cfg["inputs"]["invivo_voxel_size"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=".")
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "config" / "config.yaml"))
    ap.add_argument("--voxels", type=int, default=2000, help="0 = every voxel of the mask")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--fit", default=None, help="comma-separated fitted parameters (default: config nlls.fit)")
    ap.add_argument("--nominal", default="", help="overrides of nlls.nominal, e.g. Rex=13.6,T2s=12.5e-6")
    ap.add_argument("--bounds", default="", help="bounds overrides, e.g. Rex=2:30,T2s=5e-6:2.1e-5 (for parameters whose prior is fixed)")
    ap.add_argument("--ftol", type=float, default=None)
    ap.add_argument("--xtol", type=float, default=None)
    ap.add_argument("--max-iter", type=int, default=None)
    ap.add_argument("--starts", default="dictionary,network", help="dictionary and/or network (if a CRB network exists)")
    ap.add_argument("--save", default=None, help="write the fitted parameters of each start to this .npz")
    ap.add_argument("--tiny", action="store_true", help="resources built from the public inputs, 2 voxels, 1 worker")
    args = ap.parse_args()
    cfg = yaml.safe_load(Path(args.config).read_text())
    if args.tiny:
        tmp = tempfile.TemporaryDirectory(prefix="nlls_invivo_tiny_")
        args.run, args.voxels, args.workers, args.starts = tmp.name, 2, 1, "dictionary"
        build_tiny_run(Path(tmp.name), cfg)
    run = Path(args.run)
    seq = load_sequence(run / "resources" / "sequence.h5")
    basis = load_basis(run / "resources" / "basis.h5")
    r2sl = R2slTable.load(run / "resources" / "r2sl.h5")
    img = read_coefficient_image(run / "resources" / "invivo" / "coefficients.nii.gz", run / "resources" / "invivo" / "mask.nii.gz")
    y = img.coefficients[img.mask]
    n_all = len(y)
    if args.voxels:
        y = y[np.random.default_rng(0).permutation(n_all)[: args.voxels]]
    ncfg = dict(cfg["nlls"])
    fit = args.fit.split(",") if args.fit else list(ncfg["fit"])
    nominal = dict(ncfg["nominal"])
    for item in filter(None, args.nominal.split(",")):
        key, val = item.split("=")
        nominal[key] = float(val)
    for key in ("ftol", "xtol", "max_iter"):
        if getattr(args, key) is not None:
            ncfg[key] = getattr(args, key)
    overrides = dict(ncfg["bounds"])
    for item in filter(None, args.bounds.split(",")):
        key, val = item.split("=")
        overrides[key] = [float(x) for x in val.split(":")]
    bounds = bounds_from_priors(cfg["priors"]["parameters"], seq.tr, fit, overrides)
    common = dict(bounds=bounds, nominal=nominal, fit=fit, max_iter=ncfg["max_iter"], ftol=ncfg["ftol"],
                  xtol=ncfg["xtol"], batch_size=ncfg["batch_size"], r2sl=r2sl, workers=args.workers, threads=1)
    starts = {}
    if "dictionary" in args.starts:
        starts["dictionary"] = dict(dictionary=dictionary_axes(ncfg["dictionary"], seq.tr))
    net_path = run / "results" / "train_network" / "crb" / "model.pt"
    if "network" in args.starts and net_path.exists():
        model = load_model(net_path, expect_basis_sha256=basis.sha256)
        t0 = time.perf_counter()
        est = predict(model, y)
        print(f"network inference {(time.perf_counter() - t0) / len(y) * 1e6:.1f} us/voxel")
        starts["CRB network"] = dict(start={p: est[:, i] for i, p in enumerate(model.meta["estimated"]) if p in fit})
    print(f"{len(y)} of {n_all} voxels, {args.workers} workers; fit {fit}, ftol {ncfg['ftol']}, xtol {ncfg['xtol']}, "
          f"fixed {({k: v for k, v in nominal.items() if k not in fit})}")
    saved = {}

    def cpu_seconds() -> float:
        ru = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        return sum(r.ru_utime + r.ru_stime for r in ru)

    for name, kw in starts.items():
        c0 = cpu_seconds()
        res = fit_nlls(y, seq, basis.u, **common, **kw)
        cpu = (cpu_seconds() - c0) / len(y)
        saved[name.replace(" ", "_")] = res.theta
        print(f"start {name:12s}: {res.time_per_voxel * 1e3:7.1f} ms/voxel (wall, {args.workers} workers), "
              f"median iterations {np.median(res.iterations):.0f}, converged {res.converged.mean():.1%}, "
              f"full slice {res.time_per_voxel * n_all / 60:.1f} min, median cost {np.median(res.cost):.3g}")
        # CPU time (all processes, incl. their start-up): the time on idle cores, robust to other load
        print(f"  CPU time {cpu * 1e3:.1f} ms/voxel; full slice on {args.workers} otherwise idle cores "
              f"{cpu * n_all / args.workers / 60:.1f} min")
    if args.save:
        np.savez(args.save, fit=np.array(fit), **saved)


if __name__ == "__main__":
    main()
