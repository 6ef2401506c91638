"""The Hamiltonian of docs/physics.md section 2 and its derivatives, as batched 6x6 matrices (PyTorch).

* :func:`_hamiltonian_entries`: the non-zero entries of H (state ``[xf, yf, zf, xs, zs, 1]``, M0 = 1);
* :func:`_elementary_entries`: dH/d(elementary direction) for the :data:`_ELEMENTARY` directions;
* :class:`_Directions`: requested derivative directions as combinations of elementary ones;
* :func:`_build`, :func:`_directions_tensor`: H T and dH/dtheta_k T as dense [..., 6, 6] and
  [..., 6, K, 6] tensors (the generators and directions of the Frechet derivatives).

Private to :mod:`crbnn.physics` (used by :mod:`crbnn.physics.signal`).  Units: s, 1/s, rad/s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

XF, YF, ZF, XS, ZS, C = range(6)


#: Elementary directions: dH/d(elementary) as lists of (row, col, factor) entries (:func:`_elementary_entries`).
_ELEMENTARY = ("m0s", "R1f", "R1s", "R2f", "Rex", "omega0", "B1w", "R2sl")



class _Directions:
    """Requested derivative directions as linear combinations of elementary directions.

    ``coef[d][elem]`` is a tensor broadcastable to [S] (per signal) or [S, N] (per pulse).
    """

    def __init__(self) -> None:
        self.coef: list[dict[str, torch.Tensor]] = []

    def add(self, combo: dict[str, torch.Tensor]) -> None:
        self.coef.append(combo)

    def __len__(self) -> int:
        return len(self.coef)


def _hamiltonian_entries(p: Mapping[str, torch.Tensor], w1: torch.Tensor, r2sl: torch.Tensor) -> dict[tuple[int, int], torch.Tensor]:
    """Non-zero entries of H (docs/physics.md section 2) at M0 = 1, broadcast over [S, P]."""
    m0s = p["m0s"]
    m0f = 1.0 - m0s
    b1w1 = p["B1"] * w1
    return {
        (XF, XF): -p["R2f"],
        (XF, YF): -p["omega0"],
        (XF, ZF): b1w1,
        (YF, XF): p["omega0"],
        (YF, YF): -p["R2f"],
        (ZF, XF): -b1w1,
        (ZF, ZF): -p["R1f"] - p["Rex"] * m0s,
        (ZF, ZS): p["Rex"] * m0f,
        (ZF, C): p["R1f"] * m0f,
        (XS, XS): -r2sl,
        (XS, ZS): b1w1,
        (ZS, ZF): p["Rex"] * m0s,
        (ZS, XS): -b1w1,
        (ZS, ZS): -p["R1s"] - p["Rex"] * m0f,
        (ZS, C): p["R1s"] * m0s,
    }


def _elementary_entries(name: str, p: Mapping[str, torch.Tensor], w1: torch.Tensor) -> list[tuple[int, int, torch.Tensor | float]]:
    """dH/d(elementary direction) at M0 = 1."""
    m0s = p["m0s"]
    rex = p["Rex"]
    if name == "m0s":
        return [(ZF, ZF, -rex), (ZF, ZS, -rex), (ZF, C, -p["R1f"]), (ZS, ZF, rex), (ZS, ZS, rex), (ZS, C, p["R1s"])]
    if name == "R1f":
        return [(ZF, ZF, -1.0), (ZF, C, 1.0 - m0s)]
    if name == "R1s":
        return [(ZS, ZS, -1.0), (ZS, C, m0s)]
    if name == "R2f":
        return [(XF, XF, -1.0), (YF, YF, -1.0)]
    if name == "Rex":
        return [(ZF, ZF, -m0s), (ZF, ZS, 1.0 - m0s), (ZS, ZF, m0s), (ZS, ZS, -(1.0 - m0s))]
    if name == "omega0":
        return [(XF, YF, -1.0), (YF, XF, 1.0)]
    if name == "B1w":
        return [(XF, ZF, w1), (ZF, XF, -w1), (XS, ZS, w1), (ZS, XS, -w1)]
    if name == "R2sl":
        return [(XS, XS, -1.0)]
    raise KeyError(name)


def _build(shape: tuple[int, ...], entries, dtype, device) -> torch.Tensor:
    out = torch.zeros(*shape, 6, 6, dtype=dtype, device=device)
    for (i, j), v in entries.items():
        out[..., i, j] = v
    return out


def _directions_tensor(
    dirs: _Directions, p: Mapping[str, torch.Tensor], w1: torch.Tensor, t: torch.Tensor, shape: tuple[int, ...],
    allowed: Sequence[str], device,
) -> torch.Tensor:
    """E = dH/dtheta_k * T in layout [*shape, 6, K, 6]; elementary directions not in ``allowed`` are zero."""
    k = len(dirs)
    e = torch.zeros(*shape, 6, k, 6, dtype=torch.float64, device=device)
    for d, combo in enumerate(dirs.coef):
        for name, c in combo.items():
            if name not in allowed:
                continue
            for i, j, v in _elementary_entries(name, p, w1):
                e[..., i, d, j] += c * v * t  # broadcasts over [*shape]
    return e
