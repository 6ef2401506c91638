"""Plain per-pulse reference implementation of the signal model (slow; for tests and benchmarks).

One ``scipy.linalg.expm`` per interval, a 6x6 product per pulse, NumPy float64, one signal at a
time: deliberately the most direct transcription of docs/physics.md sections 2, 4 and 5, sharing no
code with :mod:`crbnn.physics.signal` except the R2sl table.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from crbnn.physics.r2sl import R2slTable, default_table


def hamiltonian(w1: float, r2sl: float, p: dict[str, float]) -> np.ndarray:
    """H of docs/physics.md section 2 (6x6, 1/s) for pulse amplitude w1 (rad/s) and R2sl (1/s)."""
    m0s, m0 = p["m0s"], p["M0"]
    m0f = 1.0 - m0s
    b1w1 = p["B1"] * w1
    h = np.zeros((6, 6))
    h[0] = [-p["R2f"], -p["omega0"], b1w1, 0, 0, 0]
    h[1] = [p["omega0"], -p["R2f"], 0, 0, 0, 0]
    h[2] = [-b1w1, 0, -p["R1f"] - p["Rex"] * m0s, 0, p["Rex"] * m0f, p["R1f"] * m0 * m0f]
    h[3] = [0, 0, 0, -r2sl, b1w1, 0]
    h[4] = [0, 0, p["Rex"] * m0s, -b1w1, -p["R1s"] - p["Rex"] * m0f, p["R1s"] * m0 * m0s]
    return h


def repetition_operators(alpha: np.ndarray, trf: np.ndarray, tr: float, p: dict[str, float], table: R2slTable | None = None) -> list[np.ndarray]:
    """U_1 ... U_N of docs/physics.md section 4 for one parameter set (general parametrization)."""
    import torch

    table = table or default_table()
    dxs = np.diag([1.0, 1, 1, 0, 1, 1])
    rz = np.diag([-1.0, -1, 1, 1, 1, 1])
    r2sl = table.lookup(torch.as_tensor(trf), torch.as_tensor(alpha), torch.tensor(p["B1"], dtype=torch.float64), torch.tensor(p["T2s"], dtype=torch.float64))[0].numpy()
    hfp = hamiltonian(0.0, 0.0, p)
    ops = []
    for n in range(len(alpha)):
        w1 = alpha[n] / trf[n]
        if n == 0:
            pfp = dxs @ scipy.linalg.expm(hfp * tr / 2)
            theta = p["B1"] * w1 * trf[0]
            pp = np.eye(6)
            pp[0, 0] = np.sin(theta / 2) ** 2
            pp[1, 1] = -np.sin(theta / 2) ** 2
            pp[2, 2] = np.cos(theta)
            blk = scipy.linalg.expm(np.array([[-r2sl[0], p["B1"] * w1], [-p["B1"] * w1, 0.0]]) * trf[0])
            pp[3:5, 3:5] = blk
        else:
            pfp = dxs @ scipy.linalg.expm(hfp * (tr - trf[n]) / 2)
            pp = scipy.linalg.expm(hamiltonian(w1, r2sl[n], p) * trf[n])
        ops.append(pfp @ pp @ rz @ pfp)
    return ops


def steady_state_signal(alpha: np.ndarray, trf: np.ndarray, tr: float, p: dict[str, float], table: R2slTable | None = None, cycles: int = 1) -> np.ndarray:
    """Periodic steady-state signal M0 (xf + i yf) at the N echoes, repeated ``cycles`` times.

    The fixed point is found from the explicit cycle product; later cycles are propagated by
    plain repeated application of the operators (no periodicity is assumed after cycle 1).
    """
    ops = repetition_operators(alpha, trf, tr, p, table)
    a = np.eye(6)
    for u in ops[1:]:
        a = u @ a
    a = ops[0] @ a
    m = np.linalg.solve(a - np.diag([1.0, 1, 1, 1, 1, 0]), np.eye(6)[5])
    out = []
    for c in range(cycles):
        for n in range(len(alpha)):
            if not (c == 0 and n == 0):
                m = ops[n] @ m
            out.append(m[0] + 1j * m[1])
    return np.array(out)
