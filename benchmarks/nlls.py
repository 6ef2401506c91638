"""Benchmark: time per voxel of the NLLS reference vs network inference (target: >= 1000x faster).

Simulates ``--voxels`` noisy signals (|M0| = 0.5, sigma = 0.01, random phase) at random tissue
parameters inside the default priors, fits them with crbnn.estimate.nlls.fit_nlls (dictionary start, default
settings of config/config.yaml) and times a network's ``predict`` on many more voxels.  Prints both
times per voxel, their ratio and the NLLS accuracy.  Uses the public inputs of
crbnn.data.inputs.cached_inputs() (or --data) and a trained network if --model is given (else an untrained default-size network).

    .venv/bin/python benchmarks/nlls.py --voxels 32 --threads 1
    .venv/bin/python benchmarks/nlls.py --tiny      # seconds: checks that the benchmark runs (tests)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import scipy.io
import torch

from crbnn.config.settings import bounds_from_priors
from crbnn.data.inputs import cached_inputs
from crbnn.data.sequence import load_sequence
from crbnn.estimate.nlls import FIT_PARAMETERS, PaperModel, dictionary_axes, fit_nlls
from crbnn.evaluate.grid import noisy_coefficients

PRIORS = {"m0s": {"dist": "uniform", "low": 0.0, "high": 0.35}, "T1": {"dist": "uniform", "low": 0.4, "high": 2.5},
          "T2f": {"dist": "uniform", "low": 0.02, "high": 0.25}, "Rex": {"dist": "uniform", "low": 2.0, "high": 30.0},
          "T2s": {"dist": "uniform", "low": 5e-6, "high": 2.1e-5},
          "omega0": {"dist": "uniform", "low": -1.0, "high": 1.0, "units": "pi/TR"},
          "B1": {"dist": "uniform", "low": 0.6, "high": 1.3}}
NOMINAL = {"m0s": 0.15, "T1": 1.2, "T2f": 0.07, "Rex": 12.0, "T2s": 1.25e-5, "omega0": 0.0, "B1": 1.0}
DICTIONARY = {"m0s": {"start": 0.0, "stop": 0.3, "num": 7}, "T1": {"start": 0.5, "stop": 2.5, "num": 8, "spacing": "log"},
              "T2f": {"start": 0.025, "stop": 0.2, "num": 7, "spacing": "log"}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--voxels", type=int, default=32, help="NLLS voxels (default 32)")
    ap.add_argument("--net-voxels", type=int, default=100_000, help="network voxels (default 1e5)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", type=Path, default=None, help="results/train_network/<loss>/model.pt")
    ap.add_argument("--data", type=Path, default=None, help="folder with the public inputs (default: crbnn.data.inputs.cached_inputs())")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (NLLS model evaluations and LM algebra)")
    ap.add_argument("--batch-size", type=int, default=512, help="voxels per LM chunk")
    ap.add_argument("--r2sl", type=Path, default=None, help="resources/r2sl.h5 (default: crbnn.physics.r2sl.default_table())")
    ap.add_argument("--tiny", action="store_true", help="2 NLLS voxels, 1000 network voxels: checks that the script runs")
    a = ap.parse_args()
    if a.tiny:
        a.voxels, a.net_voxels = 2, 1000
    torch.set_num_threads(a.threads)
    data = a.data if a.data is not None else cached_inputs()
    seq = load_sequence(data / "control_MT_v3p2_TR3p5ms_discretized.mat", tr=3.5e-3)
    u = scipy.io.loadmat(data / "basis_for_compress.mat")["u"][:, :13].astype(np.complex128)
    rng = np.random.default_rng(a.seed)
    n = a.voxels
    truth = np.column_stack([rng.uniform(0.02, 0.25, n), rng.uniform(0.65, 2.0, n), rng.uniform(0.03, 0.15, n),
                             rng.uniform(5, 25, n), rng.uniform(8e-6, 18e-6, n), rng.uniform(-200, 200, n),
                             rng.uniform(0.7, 1.2, n)])
    g, _ = PaperModel(seq, u, device=a.device)(torch.as_tensor(truth), jacobian=False)
    y = noisy_coefficients(g.cpu().numpy(), 1, 0.5, 0.01, seed=a.seed + 1)[0][:, 0]
    from crbnn.physics.r2sl import R2slTable

    r2sl = R2slTable.load(a.r2sl) if a.r2sl is not None else None
    res = fit_nlls(y, seq, u, bounds=bounds_from_priors(PRIORS, seq.tr, FIT_PARAMETERS), nominal=NOMINAL, r2sl=r2sl,
                   dictionary=dictionary_axes(DICTIONARY), batch_size=a.batch_size, device=a.device)
    t_nlls = res.time_per_voxel
    rel = np.abs(res.theta[:, :3] - truth[:, :3]) / truth[:, :3]
    print(f"NLLS: {n} voxels, {t_nlls * 1e3:.1f} ms/voxel ({a.device}, {a.threads} thread(s)), "
          f"converged {res.converged.mean():.0%}, median iterations {np.median(res.iterations):.0f}, "
          f"median relative error m0s/T1/T2f {np.round(np.median(rel, 0), 3).tolist()}")

    if a.model is not None:
        from crbnn.learn.model_file import load_model, predict

        net = load_model(a.model)
    else:
        from crbnn.learn.model_file import predict
        from crbnn.learn.nets import EstimatorNet

        net = EstimatorNet([26, 128, 256, 256, 256, 128, 64, 3]).eval()
        net.meta = {"normalization": "l2"}
    yn = np.tile(y, (a.net_voxels // n + 1, 1))[: a.net_voxels]
    predict(net, yn[:1000])
    t0 = time.perf_counter()
    with torch.no_grad():
        predict(net, yn)
    t_net = (time.perf_counter() - t0) / len(yn)
    print(f"network: {len(yn)} voxels, {t_net * 1e6:.2f} us/voxel")
    print(f"ratio NLLS / network: {t_nlls / t_net:.0f}x (target >= 1000x)")


if __name__ == "__main__":
    main()
