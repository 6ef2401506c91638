"""Published in vivo values of the two-pool MT model and the in vivo claim (claim 6 of the paper).

The paper's abstract says the CRB network's "performance gain translates to in vivo maps that
align better with the literature".  A comparison with the literature is only meaningful against
values of the **same model** (the generalized-Bloch two-pool model in the constrained
parametrization of the paper, R1f = R1s = 1/T1, with T2f = 1/R2f) at the **same field strength**
(3 T): the MT parameters, and T1 above all, depend on the model (an unconstrained fit gives a very
different T1f and m0s, Asslaender et al. 2024) and on B0.

:data:`LITERATURE` holds the values that were found *and verified* with their citation, table or
figure and spread (docs/literature.md says where we looked).  The only verified values are of the
**unconstrained** model; no verified value of the constrained model at 3 T is in the table, so
:func:`claim_invivo` returns ``not testable`` for the default table.  Entering a value means
reading it in the paper: never type a number from memory or from a secondary source.

**The criterion** (fixed before any in vivo number was looked at; docs/literature.md):

* cells: every (region, parameter) of m0s, T1, T2f in WM and GM that has a literature value of the
  constrained model at 3 T;
* an estimator's *distance*: the mean over the cells of the relative error
  ``|region mean - literature| / literature`` (dimensionless, comparable across parameters; the
  literature's spread, where given, is reported beside it as ``(mean - lit) / spread`` but does not
  enter the distance, since spreads between subjects and within a region are not comparable
  across papers);
* uncertainty: a paired block bootstrap over non-overlapping ``b x b`` voxel blocks of each region
  (the maps are spatially correlated, so voxels are not independent; blocks are resampled with
  replacement, the same draw for every estimator, the region mean is the ratio of the resampled
  block sums and counts), 95 % percentile interval of each distance and of the difference
  ``distance(mse) - distance(crb)``;
* verdict: ``held`` when the 95 % interval of ``distance(mse) - distance(crb)`` lies above 0 (the
  CRB network is closer to the literature than the MSE network, beyond the sampling uncertainty of
  the region means); ``not held`` otherwise; ``not testable`` when no cell has a literature value,
  an estimator (crb or mse) or the block data are missing, or a region is empty.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from crbnn.common.parameters import PAPER_ESTIMATED

#: The paper's (constrained) parametrization: one T1 (R1f = R1s = 1/T1), T2f = 1/R2f.
CONSTRAINED = "constrained"
#: R1f and R1s fitted separately (T1f = 1/R1f, T1s = 1/R1s).
UNCONSTRAINED = "unconstrained"
#: Field strength of the public in vivo data (T).
FIELD_T = 3.0
#: The regions and parameters of the claim (the paper's estimated parameters; a config that estimates
#: fewer has fewer cells, those its networks estimate).
REGIONS: tuple[str, ...] = ("WM", "GM")
PARAMETERS: tuple[str, ...] = PAPER_ESTIMATED
#: Verdicts of a claim (shared with crbnn.evaluate.claims).
VERDICTS: tuple[str, ...] = ("held", "not held", "not testable")
CRITERION = (
    "Held when the 95 % paired block-bootstrap interval of D(mse) - D(crb) lies above 0, where D is the mean "
    "over WM/GM x m0s/T1/T2f cells with a published 3 T value of the constrained model (R1f = R1s) of "
    "|region mean - published| / published."
)


@dataclass(frozen=True)
class LiteratureValue:
    """One published in vivo value.

    ``value`` and ``spread`` in SI units (1, s, 1/s); ``spread`` None when the source gives none,
    ``spread_kind`` says what it is (e.g. "SD over subjects").  ``model`` is :data:`CONSTRAINED` or
    :data:`UNCONSTRAINED`; ``parameter`` uses this project's names (``T1`` for the constrained model,
    ``T1f``/``T1s`` for the unconstrained one).  ``source`` is a full citation, ``location`` the
    table, figure or section where the number is printed.
    """

    region: str
    parameter: str
    value: float
    spread: float | None
    spread_kind: str
    model: str
    field_t: float
    source: str
    location: str
    note: str = ""


ASSLAENDER_2024_UNCONSTRAINED = (
    "Asslaender J, Mao A, Marchetto E, Beck ES, La Rosa F, Charlson RW, Shepherd TM, Flassbeck S. "
    "Unconstrained quantitative magnetization transfer imaging: disentangling T1 of the free and semi-solid "
    "spin pools. Imaging Neuroscience 2024; doi:10.1162/imag_a_00177 (arXiv:2301.08394)"
)

#: Verified published values (docs/literature.md).  Only unconstrained-model values were verified;
#: they are listed to document why the constrained-model claim is not testable with them.
LITERATURE: tuple[LiteratureValue, ...] = (
    LiteratureValue("WM", "m0s", 0.212, None, "none given in the abstract", UNCONSTRAINED, 3.0,
                    ASSLAENDER_2024_UNCONSTRAINED, "abstract (arXiv:2301.08394v3)",
                    "healthy white matter, 4 controls; arXiv v1 abstract: 0.202"),
    LiteratureValue("WM", "T1f", 1.84, None, "none given in the abstract", UNCONSTRAINED, 3.0,
                    ASSLAENDER_2024_UNCONSTRAINED, "abstract (arXiv:2301.08394v3)",
                    "healthy white matter; arXiv v1 abstract: 1.90 s"),
    LiteratureValue("WM", "T1s", 0.34, None, "none given in the abstract", UNCONSTRAINED, 3.0,
                    ASSLAENDER_2024_UNCONSTRAINED, "abstract (arXiv:2301.08394v3)",
                    "healthy white matter; arXiv v1 abstract: 0.327 s"),
)


def literature_table(values: Sequence[LiteratureValue] = LITERATURE) -> list[dict[str, Any]]:
    """The literature values as plain dicts (JSON, tables)."""
    return [asdict(v) for v in values]


def comparable(values: Sequence[LiteratureValue], model: str = CONSTRAINED, field_t: float = FIELD_T,
               regions: Sequence[str] = REGIONS, parameters: Sequence[str] = PARAMETERS) -> dict[tuple[str, str], LiteratureValue]:
    """``{(region, parameter): value}`` of the values of ``model`` at ``field_t`` (first one wins).

    >>> v = LiteratureValue("WM", "T1", 1.0, None, "", CONSTRAINED, 3.0, "x", "Table 1")
    >>> sorted(comparable([v, LiteratureValue("WM", "T1", 9.0, None, "", CONSTRAINED, 1.5, "y", "")]))
    [('WM', 'T1')]
    >>> comparable(LITERATURE)
    {}
    """
    out: dict[tuple[str, str], LiteratureValue] = {}
    for v in values:
        if v.model == model and math.isclose(v.field_t, field_t) and v.region in regions and v.parameter in parameters:
            out.setdefault((v.region, v.parameter), v)
    return out


# ---------------------------------------------------------------------------- block data of the regions


def region_blocks(
    maps: Mapping[str, Mapping[str, NDArray[Any]]],
    regions: Mapping[str, NDArray[np.bool_]],
    block: int,
    parameters: Sequence[str] = PARAMETERS,
) -> dict[str, Any]:
    """Per region, the non-overlapping ``block x block`` in-plane voxel blocks (all slices) that hold
    region voxels, and per estimator and parameter the sum and count of its finite values per block.

    The input of the block bootstrap of :func:`claim_invivo` (``regions.json`` key
    ``tissue_blocks``).  Returns ``{"block": b, "regions": {region: {"n_blocks": k, estimator:
    {parameter: {"sum": [k], "n": [k]}}}}}``.

    >>> m = {"crb": {"T1": np.arange(16.0).reshape(4, 4, 1)}}
    >>> r = region_blocks(m, {"WM": np.ones((4, 4, 1), bool)}, 2, ("T1",))
    >>> r["regions"]["WM"]["crb"]["T1"]["n"], r["regions"]["WM"]["crb"]["T1"]["sum"]
    ([4, 4, 4, 4], [10.0, 18.0, 42.0, 50.0])
    """
    if block < 1:
        raise ValueError(f"block size must be >= 1 voxel, got {block}")
    out: dict[str, Any] = {"block": int(block), "regions": {}}
    for rname, where in regions.items():
        where = np.asarray(where, bool)
        ids = _block_ids(where.shape, block)
        used = np.unique(ids[where])
        reg: dict[str, Any] = {"n_blocks": int(len(used))}
        for est, m in maps.items():
            e: dict[str, Any] = {}
            for p in parameters:
                if p not in m:
                    continue
                v = np.asarray(m[p], dtype=np.float64)
                ok = where & np.isfinite(v)
                s = np.bincount(ids[ok], weights=v[ok], minlength=int(ids.max()) + 1)[used]
                n = np.bincount(ids[ok], minlength=int(ids.max()) + 1)[used]
                e[p] = {"sum": [float(x) for x in s], "n": [int(x) for x in n]}
            reg[est] = e
        out["regions"][rname] = reg
    return out


def _block_ids(shape: Sequence[int], block: int) -> NDArray[np.int64]:
    """Integer id of the in-plane block (x // b, y // b) of every voxel (slices share a block)."""
    x = np.arange(shape[0])[:, None] // block
    y = np.arange(shape[1])[None, :] // block
    ids = x * (int(shape[1]) // block + 1) + y
    return np.broadcast_to(ids.reshape(ids.shape + (1,) * (len(shape) - 2)), tuple(shape)).astype(np.int64)


# ---------------------------------------------------------------------------- the claim


def _load(regions: str | Path | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(regions, Mapping):
        return regions
    return json.loads(Path(regions).read_text())


def _block_means(blocks: Mapping[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """``{estimator: {region: {parameter: mean}}}`` from the block sums (the mean of the finite voxels)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for region, reg in blocks.get("regions", {}).items():
        for est, pars in reg.items():
            if not isinstance(pars, Mapping):
                continue
            for p, b in pars.items():
                n = float(np.sum(b["n"]))
                out.setdefault(est, {}).setdefault(region, {})[p] = float(np.sum(b["sum"])) / n if n else math.nan
    return out


def _not_testable(reason: str, **numbers: Any) -> dict[str, Any]:
    return {"verdict": "not testable", "reason": reason, "criterion": CRITERION, **numbers}


def claim_invivo(
    regions: str | Path | Mapping[str, Any],
    literature: Sequence[LiteratureValue] = LITERATURE,
    estimators: Sequence[str] = ("nlls", "mse", "crb", "bias_reduced"),
    n_boot: int = 2000,
    seed: int = 0,
    model: str = CONSTRAINED,
    field_t: float = FIELD_T,
    level: float = 0.95,
) -> dict[str, Any]:
    """Claim 6: the CRB network's WM/GM means of m0s, T1, T2f are closer to published values of the
    same model at the same field than the MSE network's (criterion: the module docstring and
    :data:`CRITERION`).

    ``regions``: ``results/images/invivo/regions.json`` (path or dict): the tissue region names from
    ``tissue_regions.n_voxels`` (else ``WM``, ``GM``) and the block sums of ``tissue_blocks``
    (:func:`region_blocks`), which give both the region means (the mean of each estimator's finite
    voxels, as the ``rows`` of the file) and the bootstrap.  ``seed``: the bootstrap's seed (derive it from the config).

    Returns ``verdict`` (one of :data:`VERDICTS`), ``reason``, ``criterion``, and the numbers:
    ``literature`` (the cells used), ``estimators`` ``{name: {"distance", "interval", "cells":
    {"WM/T1": {"mean", "literature", "relative_error", "z"}}}}``, ``difference_mse_minus_crb`` with
    its ``interval``, ``crb_closer`` (point estimate), ``n_boot``, ``block``.
    """
    data = _load(regions)
    lit = comparable(literature, model, field_t)
    names = list(data.get("tissue_regions", {}).get("n_voxels", {}) or REGIONS)
    cells = [(r, p) for r in REGIONS for p in PARAMETERS if (r, p) in lit and r in names]
    lit_out = {f"{r}/{p}": {"value": lit[(r, p)].value, "spread": lit[(r, p)].spread,
                            "source": lit[(r, p)].source, "location": lit[(r, p)].location} for r, p in cells}
    if not cells:
        return _not_testable(f"no published in vivo value of the {model} model at {field_t:g} T for "
                             f"{'/'.join(REGIONS)} x {'/'.join(PARAMETERS)} in the literature table "
                             "(crbnn.evaluate.literature.LITERATURE; docs/literature.md)", literature=lit_out)
    blocks = data.get("tissue_blocks")
    if not blocks:
        return _not_testable("the regions file has no block data (tissue_blocks) for the uncertainty of the region means",
                             literature=lit_out)
    means = _block_means(blocks)
    present = [e for e in estimators if e in means]
    missing = [e for e in ("crb", "mse") if e not in present]
    if missing:
        return _not_testable(f"no region means of {missing} in the regions file", literature=lit_out)
    estimated = {p for e in ("crb", "mse") for reg in means[e].values() for p in reg}
    cells = [(r, p) for r, p in cells if p in estimated]
    if not cells:
        return _not_testable("the networks estimate none of the parameters with a published value "
                             f"({', '.join(sorted(lit_out))})", literature=lit_out)
    empty = [r for r in {r for r, _ in cells} if blocks["regions"].get(r, {}).get("n_blocks", 0) == 0]
    if empty:
        return _not_testable(f"empty tissue region(s) {sorted(empty)}", literature=lit_out)

    rng = np.random.default_rng(seed)
    draws = {r: rng.integers(0, blocks["regions"][r]["n_blocks"], size=(n_boot, blocks["regions"][r]["n_blocks"]))
             for r in sorted({r for r, _ in cells})}
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    per: dict[str, Any] = {}
    boot: dict[str, NDArray[np.float64]] = {}
    for e in present:
        cell_out: dict[str, Any] = {}
        errs, berrs = [], []
        for r, p in cells:
            ref = lit[(r, p)]
            mean = means[e].get(r, {}).get(p, math.nan)
            rel = abs(mean - ref.value) / abs(ref.value)
            z = (mean - ref.value) / ref.spread if ref.spread else None
            cell_out[f"{r}/{p}"] = {"mean": mean, "literature": ref.value, "relative_error": rel, "z": z}
            errs.append(rel)
            b = blocks["regions"][r].get(e, {}).get(p)
            if b is None:
                berrs.append(np.full(n_boot, np.nan))
                continue
            s, n = np.asarray(b["sum"], float)[draws[r]].sum(1), np.asarray(b["n"], float)[draws[r]].sum(1)
            with np.errstate(invalid="ignore", divide="ignore"):
                berrs.append(np.abs(s / n - ref.value) / abs(ref.value))
        d = float(np.mean(errs))
        boot[e] = np.mean(berrs, axis=0)
        ok = np.isfinite(boot[e])
        interval = [float(x) for x in np.percentile(boot[e][ok], q)] if ok.any() else [math.nan, math.nan]
        per[e] = {"distance": d, "interval": interval, "cells": cell_out}
    diff = per["mse"]["distance"] - per["crb"]["distance"]
    bd = boot["mse"] - boot["crb"]
    bd = bd[np.isfinite(bd)]
    if len(bd) == 0:
        return _not_testable("no finite bootstrap replicate of the distances (empty blocks)", literature=lit_out,
                             estimators=per)
    di = [float(x) for x in np.percentile(bd, q)]
    held = di[0] > 0
    reason = (f"D(crb) = {per['crb']['distance']:.3g}, D(mse) = {per['mse']['distance']:.3g}; "
              f"D(mse) - D(crb) = {diff:.3g}, {level:.0%} interval [{di[0]:.3g}, {di[1]:.3g}] "
              + ("above 0: the CRB network is closer to the literature" if held else
                 "not above 0: the CRB network is not closer to the literature beyond the uncertainty"))
    return {"verdict": "held" if held else "not held", "reason": reason, "criterion": CRITERION,
            "literature": lit_out, "estimators": per, "difference_mse_minus_crb": diff,
            "difference_interval": di, "crb_closer": bool(diff > 0), "n_boot": int(n_boot),
            "block": int(blocks.get("block", 0)), "cells": [f"{r}/{p}" for r, p in cells]}
