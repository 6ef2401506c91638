"""Device check of the CUDA path: physics on CUDA equals CPU, the oracle holds on CUDA, throughput.

Run on a machine with a GPU (data folder with the control file and basis as argument):

    PYTHONPATH=src python benchmarks/gpu_check.py DATA_DIR
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from crbnn.common.parameters import PAPER_PARAMETERS
from crbnn.data.basis import load_basis
from crbnn.data.sequence import load_sequence
from crbnn.data.simulate import simulate_coefficients
from crbnn.physics.signal import simulate, simulate_paper

ORACLE_FIRST = -0.355900208848632
ORACLE_LAST = 0.3750841419498616


def main(data_dir: str) -> None:
    d = Path(data_dir)
    assert torch.cuda.is_available(), "no CUDA device"
    print("device:", torch.cuda.get_device_name(), "torch", torch.__version__)
    seq = load_sequence(d / "control_MT_v3p2_TR3p5ms_discretized.mat", tr=3.5e-3)
    u = load_basis(d / "basis_for_compress.mat", rank=13).u
    cuda = torch.device("cuda")
    a = torch.as_tensor(seq.alpha, device=cuda)
    t = torch.as_tensor(seq.trf, device=cuda)
    p = dict(M0=1.0, m0s=0.15, R1f=0.5, R2f=15.0, Rex=30.0, R1s=3.0, T2s=10e-6, omega0=0.0, B1=1.0)
    s, _ = simulate(a, t, seq.tr, {k: torch.tensor(v, dtype=torch.float64, device=cuda) for k, v in p.items()})
    print(f"oracle on CUDA: s1 err {abs(float(s[0].real) - ORACLE_FIRST):.2e}, sN err {abs(float(s[-1].real) - ORACLE_LAST):.2e}")
    rng = np.random.default_rng(1)
    n = 8
    pp = dict(
        M0=rng.uniform(0.2, 1, n) * np.exp(1j * rng.uniform(0, 6, n)), m0s=rng.uniform(0, 0.3, n), T1=rng.uniform(0.6, 2, n),
        T2f=rng.uniform(0.04, 0.15, n), Rex=rng.uniform(5, 30, n), T2s=rng.uniform(8e-6, 16e-6, n),
        omega0=rng.uniform(-300, 300, n), B1=rng.uniform(0.7, 1.2, n),
    )
    out = {}
    for dev in ("cpu", "cuda"):
        prm = {k: torch.as_tensor(v, device=dev) for k, v in pp.items()}
        sig, jac = simulate_paper(torch.as_tensor(seq.alpha, device=dev), torch.as_tensor(seq.trf, device=dev), seq.tr, prm, wrt=PAPER_PARAMETERS)
        out[dev] = (sig.cpu(), jac.cpu())
    ds = float((out["cpu"][0] - out["cuda"][0]).abs().max())
    dj = float(((out["cpu"][1] - out["cuda"][1]).abs().amax((0, 1)) / out["cpu"][1].abs().amax((0, 1))).max())
    print(f"CUDA vs CPU: max |signal diff| {ds:.2e}, max relative Jacobian diff {dj:.2e}")
    rows = np.column_stack([rng.uniform(0, 0.3, 8192), rng.uniform(0.6, 2, 8192), rng.uniform(0.04, 0.15, 8192), rng.uniform(5, 30, 8192),
                            rng.uniform(8e-6, 16e-6, 8192), rng.uniform(-300, 300, 8192), rng.uniform(0.7, 1.2, 8192)])
    nuis = ("M0_re", "M0_im", "Rex", "T2s", "omega0", "B1")
    for bs in (512, 2048):
        simulate_coefficients(seq.alpha, seq.trf, seq.tr, u, rows[:bs], ("m0s", "T1", "T2f"), nuis, device=cuda, batch_size=bs)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        simulate_coefficients(seq.alpha, seq.trf, seq.tr, u, rows, ("m0s", "T1", "T2f"), nuis, device=cuda, batch_size=bs)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        print(f"CUDA simulate 8192 signals + 9-column Jacobian + CRB, batch {bs}: {dt:.2f} s = {dt / 8192 * 1e6:.0f} us/signal; "
              f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main(sys.argv[1])
