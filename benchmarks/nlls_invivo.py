"""NLLS on the in vivo slice: time per voxel with a dictionary start and with the CRB network's start.

Uses the resources and the trained CRB network of a finished run (``--run``, e.g. a directory where
``make reproduce`` ran):

    python benchmarks/nlls_invivo.py --run . [--voxels 2000] [--workers 2]

Prints seconds per voxel, median LM iterations and the projected time of the full slice.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import yaml

from crbnn.basis import load_basis
from crbnn.images import read_coefficient_image
from crbnn.nlls import bounds_from_priors, dictionary_axes, fit_nlls
from crbnn.r2sl import R2slTable
from crbnn.sequence import load_sequence
from crbnn.training import load_model, predict


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=".")
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "config" / "config.yaml"))
    ap.add_argument("--voxels", type=int, default=2000, help="0 = every voxel of the mask")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    run = Path(args.run)
    cfg = yaml.safe_load(Path(args.config).read_text())
    seq = load_sequence(run / "resources" / "sequence.h5")
    basis = load_basis(run / "resources" / "basis.h5")
    r2sl = R2slTable.load(run / "resources" / "r2sl.h5")
    img = read_coefficient_image(run / "resources" / "invivo" / "coefficients.nii.gz", run / "resources" / "invivo" / "mask.nii.gz")
    y = img.coefficients[img.mask]
    n_all = len(y)
    if args.voxels:
        y = y[np.random.default_rng(0).permutation(n_all)[: args.voxels]]
    ncfg = cfg["nlls"]
    bounds = bounds_from_priors(cfg["priors"]["parameters"], seq.tr, ncfg["fit"], ncfg["bounds"])
    common = dict(bounds=bounds, nominal=ncfg["nominal"], fit=ncfg["fit"], max_iter=ncfg["max_iter"], ftol=ncfg["ftol"],
                  xtol=ncfg["xtol"], batch_size=ncfg["batch_size"], r2sl=r2sl, workers=args.workers, threads=1)
    model = load_model(run / "results" / "train_network" / "crb" / "model.pt", expect_basis_sha256=basis.sha256)
    t0 = time.perf_counter()
    est = predict(model, y)
    t_net = time.perf_counter() - t0
    starts = {
        "dictionary": dict(dictionary=dictionary_axes(ncfg["dictionary"])),
        "CRB network": dict(start={p: est[:, i] for i, p in enumerate(model.meta["estimated"])}),
    }
    print(f"{len(y)} of {n_all} voxels, {args.workers} workers; network inference {t_net / len(y) * 1e6:.1f} us/voxel")
    for name, kw in starts.items():
        res = fit_nlls(y, seq, basis.u, **common, **kw)
        print(f"start {name:12s}: {res.time_per_voxel * 1e3:7.1f} ms/voxel (wall, {args.workers} workers), "
              f"median iterations {np.median(res.iterations):.0f}, converged {res.converged.mean():.1%}, "
              f"full slice {res.time_per_voxel * n_all / 60:.1f} min, median cost {np.median(res.cost):.3g}")


if __name__ == "__main__":
    main()
