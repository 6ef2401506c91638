"""What the regime does to the bounds: sqrt(CRB) of the paper's regime against all parameters unknown.

The rule ``compare_regimes`` evaluates the CRBs at a few reference points (:data:`REFERENCE_POINTS`)
once with the configured nuisance parameters and once with every tissue parameter besides the
estimated ones unknown (:func:`crbnn.config.regime.all_nuisance`); the manuscript quotes the ratio.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from crbnn.common.parameters import TISSUE_PARAMETERS
from crbnn.config.regime import all_nuisance

#: Reference points of the regime comparison (SI; the other tissue parameters from ``grids.fixed``):
#: low, white-matter-like and high m0s on the m0s x T1 grid, and a T2f point of the T1 x T2f grid.
REFERENCE_POINTS: tuple[dict[str, float], ...] = (
    {"m0s": 0.05, "T1": 1.3},
    {"m0s": 0.13, "T1": 1.3},
    {"m0s": 0.20, "T1": 1.8},
    {"T1": 1.5, "T2f": 0.10},
)


def compare_regimes(
    sequence: Any,
    basis_u: Any,
    fixed: Mapping[str, float],
    estimated: Sequence[str],
    nuisance: Sequence[str],
    *,
    M0_abs: float,
    sigma: float,
    points: Sequence[Mapping[str, float]] = REFERENCE_POINTS,
    r2sl: Any = None,
) -> list[dict[str, Any]]:
    """sqrt(CRB) of the estimated parameters at reference points in the config's regime and with all
    nine parameters unknown, at ``|M0| = M0_abs`` and noise ``sigma``.

    Returns one dict per point: ``point`` (its tissue values), ``sqrt_crb`` and ``sqrt_crb_all_unknown``
    (``{parameter: value}``, SI units) and ``ratio`` (all unknown / regime).
    """
    import numpy as np

    from crbnn.data.simulate import simulate_coefficients

    rows = np.array([[float({**fixed, **pt}[p]) for p in TISSUE_PARAMETERS] for pt in points])
    scale = float(sigma) / float(M0_abs)
    out = []
    crbs = {}
    for name, nui in (("regime", tuple(nuisance)), ("all", all_nuisance(estimated))):
        res = simulate_coefficients(np.asarray(sequence.alpha), np.asarray(sequence.trf), float(sequence.tr),
                                    np.asarray(basis_u), rows, tuple(estimated), nui, r2sl=r2sl)
        crbs[name] = np.sqrt(res["crb"]) * scale
    for i, pt in enumerate(points):
        out.append({
            "point": {p: float(v) for p, v in pt.items()},
            "sqrt_crb": {p: float(crbs["regime"][i, k]) for k, p in enumerate(estimated)},
            "sqrt_crb_all_unknown": {p: float(crbs["all"][i, k]) for k, p in enumerate(estimated)},
            "ratio": {p: float(crbs["all"][i, k] / crbs["regime"][i, k]) for k, p in enumerate(estimated)},
        })
    return out
