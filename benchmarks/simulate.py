"""Benchmark: signals + 9-parameter Jacobian on the 1142-pulse train, compressed to 13 coefficients.

Prints microseconds per signal for 1 thread and for all threads (and CUDA when present), beside two
yardsticks measured in the same run, one BLAS thread each:

* the per-pulse reference (:func:`crbnn.physics.reference.steady_state_signal`: one
  ``scipy.linalg.expm`` per interval and the 6x6 products, signal only, no derivatives);
* the bare floor: a loop of N ``scipy.linalg.expm`` of one 6x6 matrix (N = number of pulses), the
  least any per-pulse signal computation does.

Both ratios (yardstick time / crbnn time) are printed and written to ``--json`` (``ratio``: to the
per-pulse reference, ``ratio_to_expm_floor``: to the bare floor).  They are robust to the load of a
shared machine: the 1-thread crbnn time and the yardsticks are measured alternately ``--repeats``
times and the fastest of each is kept.  Single-thread times are process CPU times (``time.process_time``: the
time this process ran on a core, not the time it waited for one on a loaded machine); the
multi-thread and CUDA rows are wall-clock times.  Then the peak resident memory for two batch counts (memory must stay
flat: signals are streamed in batches).

    python benchmarks/simulate.py [--data-dir DIR] [--signals 64] [--repeats 3] [--json out.json]
    python benchmarks/simulate.py --tiny    # seconds: checks that the benchmark runs (tests)

Without --data-dir the public inputs come from crbnn.data.inputs.cached_inputs ($CRBNN_DATA_DIR, else
the user cache, filled once from the pinned URLs or $CRBNN_MIRROR_URL).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the reference loop runs on one core (set before numpy)
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402
import torch  # noqa: E402

from crbnn.common.parameters import PAPER_PARAMETERS  # noqa: E402
from crbnn.data.basis import load_basis  # noqa: E402
from crbnn.data.inputs import cached_inputs  # noqa: E402
from crbnn.data.sequence import load_sequence  # noqa: E402
from crbnn.data.simulate import simulate_coefficients  # noqa: E402
from crbnn.physics.r2sl import default_table  # noqa: E402
from crbnn.physics.reference import hamiltonian, steady_state_signal  # noqa: E402


def table(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([
        rng.uniform(0.0, 0.3, n), rng.uniform(0.6, 2.0, n), rng.uniform(0.04, 0.15, n), rng.uniform(5, 30, n),
        rng.uniform(8e-6, 16e-6, n), rng.uniform(-300, 300, n), rng.uniform(0.7, 1.2, n),
    ])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=None, help="folder with the public inputs (default: crbnn.data.inputs.cached_inputs())")
    ap.add_argument("--signals", type=int, default=64)
    ap.add_argument("--reference-signals", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None, help="also write the numbers to this JSON file (crbnn.report.record --bench)")
    ap.add_argument("--tiny", action="store_true", help="a few signals, one repeat: seconds (checks that the script runs)")
    args = ap.parse_args()
    if args.tiny:
        args.signals, args.repeats, args.reference_signals = 2, 1, 1
    memory_counts = (4, 8) if args.tiny else (64, 256)
    d = Path(args.data_dir) if args.data_dir else cached_inputs()
    seq = load_sequence(d / "control_MT_v3p2_TR3p5ms_discretized.mat", tr=3.5e-3)
    u = load_basis(d / "basis_for_compress.mat", rank=13).u
    r2sl = default_table()
    nuis = [p for p in PAPER_PARAMETERS if p not in ("m0s", "T1", "T2f")]
    est = ("m0s", "T1", "T2f")
    all_threads = torch.get_num_threads()

    def crbnn_time(dev: str, threads: int, n: int) -> float:
        torch.set_num_threads(threads)
        clock = time.process_time if threads == 1 and dev == "cpu" else time.perf_counter
        tb = table(n)
        if dev == "cuda":
            torch.cuda.synchronize()
        t0 = clock()
        simulate_coefficients(seq.alpha, seq.trf, seq.tr, u, tb, est, nuis, r2sl, device=dev, batch_size=64 if dev == "cpu" else 4096)
        if dev == "cuda":
            torch.cuda.synchronize()
        return (clock() - t0) / n

    def reference_time() -> float:
        torch.set_num_threads(1)
        t0 = time.process_time()
        for row in table(args.reference_signals, seed=1):
            m0s, t1, t2f, rex, t2s, w0, b1 = row
            p = dict(M0=1.0, m0s=m0s, R1f=1 / t1, R1s=1 / t1, R2f=1 / t2f, Rex=rex, T2s=t2s, omega0=w0, B1=b1)
            steady_state_signal(seq.alpha, seq.trf, seq.tr, p, r2sl)
        return (time.process_time() - t0) / args.reference_signals

    mid = len(seq.alpha) // 2  # one pulse's generator H t at nominal tissue (a typical 1-norm)
    nominal = dict(M0=1.0, m0s=0.15, R1f=1.0, R1s=1.0, R2f=15.0, Rex=12.0, omega0=0.0, B1=1.0)
    floor_matrix = hamiltonian(float(seq.alpha[mid] / seq.trf[mid]), 5e4, nominal) * float(seq.trf[mid])

    def floor_time() -> float:
        """CPU seconds of N scipy.linalg.expm of one 6x6 matrix (N = number of pulses)."""
        t0 = time.process_time()
        for _ in range(len(seq.alpha)):
            scipy.linalg.expm(floor_matrix)
        return time.process_time() - t0

    simulate_coefficients(seq.alpha, seq.trf, seq.tr, u, table(4), est, nuis, r2sl)  # warm-up (compilation)
    reference_time()
    floor_time()
    one, ref, floor = [], [], []
    for _ in range(args.repeats):  # alternate, keep the fastest of each (robust to other load)
        one.append(crbnn_time("cpu", 1, args.signals))
        ref.append(reference_time())
        floor.append(floor_time())
    print(f"{'configuration':<34} {'us/signal':>12} {'signals/s':>10}")
    print(f"{'CPU, 1 thread (CPU time)':<34} {min(one) * 1e6:12.0f} {1 / min(one):10.1f}   (all repeats: {', '.join(f'{x * 1e6:.0f}' for x in one)})")
    print(f"{'scipy loop, signal only (CPU time)':<34} {min(ref) * 1e6:12.0f} {1 / min(ref):10.1f}   (all repeats: {', '.join(f'{x * 1e6:.0f}' for x in ref)})")
    print(f"{f'bare floor, {len(seq.alpha)} x expm 6x6 (CPU)':<34} {min(floor) * 1e6:12.0f} {1 / min(floor):10.1f}   (all repeats: {', '.join(f'{x * 1e6:.0f}' for x in floor)})")
    if all_threads > 1:
        t = crbnn_time("cpu", all_threads, args.signals)
        print(f"{f'CPU, {all_threads} threads':<34} {t * 1e6:12.0f} {1 / t:10.1f}")
    if torch.cuda.is_available():
        crbnn_time("cuda", all_threads, 64)
        t = crbnn_time("cuda", all_threads, max(args.signals, 4096))
        print(f"{'CUDA ' + torch.cuda.get_device_name():<34} {t * 1e6:12.0f} {1 / t:10.1f}")
    one_min = min(one)
    print(f"ratio per-pulse reference (no Jacobian) / crbnn (1 thread, {len(est) + len(nuis)}-column Jacobian): {min(ref) / one_min:.2f}")
    print(f"ratio bare floor ({len(seq.alpha)} x expm 6x6) / crbnn (1 thread, {len(est) + len(nuis)}-column Jacobian): {min(floor) / one_min:.2f}")
    print(f"target 5000 us/signal/core: {'met' if one_min <= 5e-3 else 'missed'} ({one_min * 1e6:.0f} us)")
    torch.set_num_threads(all_threads)
    # memory stays flat with the number of signals (streamed batches)
    rss = {}
    for n in memory_counts:
        simulate_coefficients(seq.alpha, seq.trf, seq.tr, u, table(n), est, nuis, r2sl, batch_size=64)
        rss[n] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS after {n:4d} signals: {rss[n]:.0f} MiB")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "name": "simulate", "signals": args.signals, "jacobian_columns": len(est) + len(nuis),
            "crbnn_1thread_cpu_s_per_signal": one_min, "reference_cpu_s_per_signal": min(ref),
            "ratio": min(ref) / one_min, "expm_floor_cpu_s_per_signal": min(floor),
            "ratio_to_expm_floor": min(floor) / one_min, "peak_rss_mib": {str(k): v for k, v in rss.items()},
        }, indent=2) + "\n")


if __name__ == "__main__":
    main()
