"""Benchmark: batched 6x6 expm + Frechet derivatives, torch (crbnn.physics.expm) vs numba (crbnn.physics.expm_cpu).

Affine generators (zero last row) with 1-norms log-uniform in [1, 20] (physics: typically 5-7),
B matrices, K directions.  Prints microseconds per matrix (best of --repeat wall-clock runs) for
1 thread and all threads, the speedup and the largest relative difference.

    python benchmarks/expm.py [--batch 32768] [--directions 8] [--repeat 3]
    python benchmarks/expm.py --tiny     # seconds: checks that the benchmark runs (tests)
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from crbnn.physics.expm import expm_frechet_torch
from crbnn.physics.expm_cpu import expm_frechet_cpu


def generators(bsz: int, k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(bsz, 6, 6, dtype=torch.float64, generator=g)
    d = torch.arange(5)
    a[:, d, d] = -2.0 * a[:, d, d].abs()
    a[:, 5] = 0.0
    target = torch.exp(torch.empty(bsz, dtype=torch.float64).uniform_(0.0, math.log(20.0), generator=g))
    a = a * (target / a.abs().sum(-2).amax(-1))[:, None, None]
    e = torch.randn(bsz, 6, k, 6, dtype=torch.float64, generator=g)
    e[:, 5] = 0.0
    return a, e


def best(fn, repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32768)
    ap.add_argument("--directions", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tiny", action="store_true", help="64 matrices, 2 directions, 1 repeat: checks that the script runs")
    args = ap.parse_args()
    if args.tiny:
        args.batch, args.directions, args.repeat = 64, 2, 1
    a, e = generators(args.batch, args.directions)
    t = time.perf_counter()
    expm_frechet_cpu(a[:8], e[:8])
    print(f"numba first call (JIT or cache load): {time.perf_counter() - t:.2f} s")
    nmax = torch.get_num_threads()
    for nt in sorted({1, nmax}):
        torch.set_num_threads(nt)
        tt = best(lambda: expm_frechet_torch(a, e), args.repeat) / args.batch * 1e6
        tn = best(lambda: expm_frechet_cpu(a, e), args.repeat) / args.batch * 1e6
        print(f"threads={nt}  B={args.batch} K={args.directions}  torch {tt:8.2f} us/matrix  numba {tn:7.3f} us/matrix  speedup {tt / tn:6.1f}x")
    torch.set_num_threads(nmax)
    r0, l0 = expm_frechet_torch(a, e)
    r1, l1 = expm_frechet_cpu(a, e)
    er = float(((r1 - r0).flatten(1).abs().amax(1) / r0.flatten(1).abs().amax(1)).max())
    lt0, lt1 = l0.transpose(1, 2).reshape(-1, 36), l1.transpose(1, 2).reshape(-1, 36)
    el = float(((lt1 - lt0).abs().amax(1) / lt0.abs().amax(1)).max())
    print(f"max per-matrix relative difference: expm {er:.2e}, Frechet {el:.2e}")


if __name__ == "__main__":
    main()
