"""Device check of the CUDA path: physics on CUDA equals CPU, the oracle holds on CUDA, throughput.

The CPU part (the oracle signal of tests/test_physics.py and the paper-parametrized signal with its
Jacobian, on the CPU) always runs; the CUDA part (the same on CUDA, CUDA against CPU, and the
throughput of ``simulate_coefficients`` for two batch sizes) runs when a CUDA device is present and
is otherwise skipped with a line saying so.  Run on a machine with a GPU:

    .venv/bin/python benchmarks/gpu_check.py [DATA_DIR]
    .venv/bin/python benchmarks/gpu_check.py --tiny    # seconds: checks that the script runs (tests)

``DATA_DIR`` holds the control file and the basis (default: crbnn.data.inputs.cached_inputs()).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from crbnn.common.parameters import PAPER_PARAMETERS
from crbnn.data.basis import load_basis
from crbnn.data.inputs import cached_inputs
from crbnn.data.sequence import load_sequence
from crbnn.data.simulate import simulate_coefficients
from crbnn.physics.signal import simulate, simulate_paper

ORACLE_FIRST = -0.355900208848632
ORACLE_LAST = 0.3750841419498616
ORACLE_TOLERANCE = 1e-6  # as tests/test_physics.py::test_whole_train_oracle


def oracle_error(seq, device: torch.device) -> float:
    """Largest deviation of the first and last echo of the oracle signal on ``device``."""
    a = torch.as_tensor(seq.alpha, device=device)
    t = torch.as_tensor(seq.trf, device=device)
    p = dict(M0=1.0, m0s=0.15, R1f=0.5, R2f=15.0, Rex=30.0, R1s=3.0, T2s=10e-6, omega0=0.0, B1=1.0)
    s, _ = simulate(a, t, seq.tr, {k: torch.tensor(v, dtype=torch.float64, device=device) for k, v in p.items()})
    return max(abs(float(s[0].real) - ORACLE_FIRST), abs(float(s[-1].real) - ORACLE_LAST))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir", nargs="?", default=None, help="folder with the public inputs")
    ap.add_argument("--signals", type=int, default=8192, help="signals of the CUDA throughput runs")
    ap.add_argument("--tiny", action="store_true", help="2 signals for the CPU/CUDA comparison, 64 for throughput")
    a = ap.parse_args()
    d = Path(a.data_dir) if a.data_dir else cached_inputs()
    seq = load_sequence(d / "control_MT_v3p2_TR3p5ms_discretized.mat", tr=3.5e-3)
    u = load_basis(d / "basis_for_compress.mat", rank=13).u
    has_cuda = torch.cuda.is_available()
    devices = ["cpu", "cuda"] if has_cuda else ["cpu"]
    if has_cuda:
        print("device:", torch.cuda.get_device_name(), "torch", torch.__version__)
    else:
        print(f"no CUDA device (torch {torch.__version__}): SKIPPED the CUDA part (oracle on CUDA, CUDA vs CPU, "
              "CUDA throughput); running the CPU part only")
    failed = []
    for dev in devices:
        err = oracle_error(seq, torch.device(dev))
        print(f"oracle on {dev.upper()}: max |s1, sN err| {err:.2e}")
        if not err < ORACLE_TOLERANCE:
            failed.append(f"oracle on {dev}")
    rng = np.random.default_rng(1)
    n = 2 if a.tiny else 8
    pp = dict(
        M0=rng.uniform(0.2, 1, n) * np.exp(1j * rng.uniform(0, 6, n)), m0s=rng.uniform(0, 0.3, n), T1=rng.uniform(0.6, 2, n),
        T2f=rng.uniform(0.04, 0.15, n), Rex=rng.uniform(5, 30, n), T2s=rng.uniform(8e-6, 16e-6, n),
        omega0=rng.uniform(-300, 300, n), B1=rng.uniform(0.7, 1.2, n),
    )
    out = {}
    for dev in devices:
        prm = {k: torch.as_tensor(v, device=dev) for k, v in pp.items()}
        sig, jac = simulate_paper(torch.as_tensor(seq.alpha, device=dev), torch.as_tensor(seq.trf, device=dev), seq.tr, prm, wrt=PAPER_PARAMETERS)
        out[dev] = (sig.cpu(), jac.cpu())
        if not (torch.isfinite(out[dev][0]).all() and torch.isfinite(out[dev][1]).all()):
            failed.append(f"non-finite signal or Jacobian on {dev}")
    print(f"CPU: {n} signals with a {out['cpu'][1].shape[-1]}-column Jacobian, finite")
    if has_cuda:
        ds = float((out["cpu"][0] - out["cuda"][0]).abs().max())
        dj = float(((out["cpu"][1] - out["cuda"][1]).abs().amax((0, 1)) / out["cpu"][1].abs().amax((0, 1))).max())
        print(f"CUDA vs CPU: max |signal diff| {ds:.2e}, max relative Jacobian diff {dj:.2e}")
        cuda = torch.device("cuda")
        m = 64 if a.tiny else a.signals
        rows = np.column_stack([rng.uniform(0, 0.3, m), rng.uniform(0.6, 2, m), rng.uniform(0.04, 0.15, m), rng.uniform(5, 30, m),
                                rng.uniform(8e-6, 16e-6, m), rng.uniform(-300, 300, m), rng.uniform(0.7, 1.2, m)])
        nuis = ("M0_re", "M0_im", "Rex", "T2s", "omega0", "B1")
        for bs in (32, 64) if a.tiny else (512, 2048):
            simulate_coefficients(seq.alpha, seq.trf, seq.tr, u, rows[:bs], ("m0s", "T1", "T2f"), nuis, device=cuda, batch_size=bs)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            simulate_coefficients(seq.alpha, seq.trf, seq.tr, u, rows, ("m0s", "T1", "T2f"), nuis, device=cuda, batch_size=bs)
            torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            print(f"CUDA simulate {m} signals + 9-column Jacobian + CRB, batch {bs}: {dt:.2f} s = {dt / m * 1e6:.0f} us/signal; "
                  f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    if failed:
        raise SystemExit(f"gpu_check FAILED: {', '.join(failed)}")


if __name__ == "__main__":
    main()
