"""Benchmark: signals + 8-parameter Jacobian on the 1142-pulse train, compressed to 13 coefficients.

Prints microseconds per signal for 1 thread and for all threads (and CUDA when present), beside a
plain reference (per-pulse scipy.linalg.expm loop, signal only, no derivatives), and the peak
resident memory for two batch counts (memory must stay flat: signals are streamed in batches).

    python benchmarks/simulate.py [--data-dir DIR] [--signals 64]

Without --data-dir the public inputs come from crbnn.inputs.cached_inputs ($CRBNN_DATA_DIR, else
the user cache, filled once from the pinned URLs or $CRBNN_MIRROR_URL).
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import torch

from crbnn.basis import load_basis
from crbnn.inputs import cached_inputs
from crbnn.physics import PAPER_PARAMETERS
from crbnn.r2sl import default_table
from crbnn.reference import steady_state_signal
from crbnn.sequence import load_sequence
from crbnn.simulation import simulate_coefficients


def table(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([
        rng.uniform(0.0, 0.3, n), rng.uniform(0.6, 2.0, n), rng.uniform(0.04, 0.15, n), rng.uniform(5, 30, n),
        rng.uniform(8e-6, 16e-6, n), rng.uniform(-300, 300, n), rng.uniform(0.7, 1.2, n),
    ])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=None, help="folder with the public inputs (default: crbnn.inputs.cached_inputs())")
    ap.add_argument("--signals", type=int, default=64)
    ap.add_argument("--reference-signals", type=int, default=2)
    args = ap.parse_args()
    d = Path(args.data_dir) if args.data_dir else cached_inputs()
    seq = load_sequence(d / "control_MT_v3p2_TR3p5ms_discretized.mat", tr=3.5e-3)
    u = load_basis(d / "basis_for_compress.mat", rank=13).u
    r2sl = default_table()
    nuis = [p for p in PAPER_PARAMETERS if p not in ("m0s", "T1", "T2f")]
    print(f"{'configuration':<34} {'us/signal':>12} {'signals/s':>10}")
    results = {}
    configs = [("CPU, 1 thread", "cpu", 1), (f"CPU, {torch.get_num_threads()} threads", "cpu", torch.get_num_threads())]
    if torch.cuda.is_available():
        configs.append((f"CUDA {torch.cuda.get_device_name()}", "cuda", torch.get_num_threads()))
    for name, dev, threads in configs:
        torch.set_num_threads(threads)
        n = args.signals if dev == "cpu" else max(args.signals, 4096)
        tb = table(n)
        simulate_coefficients(seq.alpha, seq.trf, seq.tr, u, tb[:4], ("m0s", "T1", "T2f"), nuis, r2sl, device=dev)  # warm-up
        if dev == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        simulate_coefficients(seq.alpha, seq.trf, seq.tr, u, tb, ("m0s", "T1", "T2f"), nuis, r2sl, device=dev,
                              batch_size=64 if dev == "cpu" else 4096)
        if dev == "cuda":
            torch.cuda.synchronize()
        dt = (time.perf_counter() - t0) / n
        results[name] = dt
        print(f"{name:<34} {dt * 1e6:12.0f} {1 / dt:10.1f}")
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    for row in table(args.reference_signals):
        m0s, t1, t2f, rex, t2s, w0, b1 = row
        p = dict(M0=1.0, m0s=m0s, R1f=1 / t1, R1s=1 / t1, R2f=1 / t2f, Rex=rex, T2s=t2s, omega0=w0, B1=b1)
        steady_state_signal(seq.alpha, seq.trf, seq.tr, p, r2sl)
    ref = (time.perf_counter() - t0) / args.reference_signals
    print(f"{'scipy expm loop, signal only':<34} {ref * 1e6:12.0f} {1 / ref:10.1f}")
    one = results["CPU, 1 thread"]
    print(f"ratio reference (no Jacobian) / crbnn (1 thread, 9-column Jacobian): {ref / one:.2f}")
    print(f"target 5000 us/signal/core: {'met' if one <= 5e-3 else 'missed'} ({one * 1e6:.0f} us)")
    # memory stays flat with the number of signals (streamed batches)
    for n in (64, 256):
        simulate_coefficients(seq.alpha, seq.trf, seq.tr, u, table(n), ("m0s", "T1", "T2f"), nuis, r2sl, batch_size=64)
        print(f"peak RSS after {n:4d} signals: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
