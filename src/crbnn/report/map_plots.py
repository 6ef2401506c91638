"""Figures of parameter maps (rule plot_maps): one panel per estimator and estimated parameter
(``model.estimated``; the paper's m0s, T1, T2f), any number of them.

Shared colour scale per column (display units of :mod:`crbnn.report.plots`); phantoms get a truth row
and error rows (estimate - truth), in vivo images difference rows (network - NLLS) on a symmetric
scale centred at 0 (the same range for every network of a column); a separate figure shows the
relative residual maps.  NaN (outside the mask, or not evaluated) is white.  m0s is shown on a
scale that starts at 0; negative estimates (possible for a network) are drawn in a separate
colour (magenta), not clipped into the lowest colour, and their count is written on the panel.
Optional region outlines (``regions``: name -> boolean mask) are drawn thinly on one reference panel
(the first parameter's, NLLS in vivo), so that they hide no estimate and no other map.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from crbnn.common.parameters import DISPLAY_SCALE, LABELS, TISSUE_PARAMETERS
from crbnn.report.plots import estimator_label, unit_suffix


def map_parameters(maps: Mapping[str, Mapping[str, NDArray[Any]]]) -> tuple[str, ...]:
    """The tissue parameters that every estimator of ``maps`` has a map of, in tissue order.

    >>> map_parameters({"nlls": {"T1": 0, "m0s": 0, "B1": 0, "residual": 0}, "crb": {"m0s": 0, "T1": 0}})
    ('m0s', 'T1')
    """
    return tuple(p for p in TISSUE_PARAMETERS if maps and all(p in m for m in maps.values()))


def _slice(a: NDArray[Any]) -> NDArray[Any]:
    """Middle slice [X, Y] shown with x to the right and y up."""
    a = np.asarray(a, dtype=np.float64)
    return (a[:, :, a.shape[2] // 2] if a.ndim == 3 else a).T


def _limits(arrays: Sequence[NDArray[Any]], symmetric: bool, q: float = 99.0) -> tuple[float, float]:
    v = np.concatenate([np.asarray(a, dtype=np.float64)[np.isfinite(a)].ravel() for a in arrays] or [np.zeros(1)])
    if v.size == 0:
        return (-1.0, 1.0) if symmetric else (0.0, 1.0)
    if symmetric:
        m = float(np.percentile(np.abs(v), q)) or 1.0
        return -m, m
    lo, hi = float(np.percentile(v, 100 - q)), float(np.percentile(v, q))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


#: colours of region outlines (cycled)
REGION_COLORS = ("#ff3030", "#00d0ff", "#2ca02c", "#ff7f0e")
#: colour of negative m0s estimates
NEGATIVE_COLOR = "#ff00ff"


def plot_map_panels(maps: Mapping[str, Mapping[str, NDArray[Any]]], truth: Mapping[str, NDArray[Any]] | None = None,
                    reference: str = "nlls", parameters: Sequence[str] | None = None,
                    regions: Mapping[str, NDArray[np.bool_]] | None = None) -> Any:
    """Map panels: estimate rows (one per estimator in ``maps`` order), then the truth row and
    error rows (phantom, ``truth`` given) or difference-from-``reference`` rows (in vivo).
    ``parameters``: the parameters shown (the workflow: ``model.estimated``); None: every tissue
    parameter that all estimators have a map of (:func:`map_parameters`).
    ``regions`` (name -> mask [X, Y, Z]) are outlined on the estimate rows, with a legend."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D

    est_names = list(maps)
    parameters = map_parameters(maps) if parameters is None else tuple(parameters)
    if not parameters:
        raise ValueError("plot_map_panels: no parameter to show (no tissue parameter map common to every estimator)")
    if truth is not None:
        return _plot_side_by_side({"truth": truth, **maps}, "truth", parameters, regions)
    if reference in maps:
        return _plot_side_by_side(maps, reference, parameters, regions)
    rows: list[tuple[str, dict[str, NDArray[Any]], bool]] = []
    if truth is not None:
        rows.append(("truth", {p: truth[p] for p in parameters}, False))
    for e in est_names:
        rows.append((estimator_label(e), {p: maps[e][p] for p in parameters}, False))
    if truth is not None:
        for e in est_names:
            rows.append((f"{estimator_label(e)} - truth", {p: maps[e][p] - truth[p] for p in parameters}, True))
    elif reference in maps:
        for e in est_names:
            if e != reference:
                rows.append((f"{estimator_label(e)} - {estimator_label(reference)}",
                             {p: maps[e][p] - maps[reference][p] for p in parameters}, True))
    n_r, n_c = len(rows), len(parameters)
    fig, axes = plt.subplots(n_r, n_c, figsize=(2.3 * n_c + 0.8, 2.1 * n_r), squeeze=False, constrained_layout=True)
    for j, p in enumerate(parameters):
        s = DISPLAY_SCALE.get(p, 1.0)
        for sym in (False, True):
            idx = [i for i, r in enumerate(rows) if r[2] == sym]
            if not idx:
                continue
            lo, hi = _limits([rows[i][1][p] * s for i in idx], sym)
            nonneg = p == "m0s" and not sym
            if nonneg:
                lo = 0.0
                hi = max(hi, 1e-6)
            for i in idx:
                ax = axes[i, j]
                img = _slice(rows[i][1][p] * s)
                im = ax.imshow(img, origin="lower", vmin=lo, vmax=hi, cmap="RdBu_r" if sym else "viridis")
                if nonneg:
                    with np.errstate(invalid="ignore"):
                        neg = img < 0
                    if neg.any():
                        ax.imshow(np.where(neg, 1.0, np.nan), origin="lower", cmap=ListedColormap([NEGATIVE_COLOR]),
                                  vmin=0, vmax=1, interpolation="nearest")
                        ax.text(0.02, 0.02, f"{int(neg.sum())} < 0", transform=ax.transAxes, fontsize="x-small",
                                color=NEGATIVE_COLOR, va="bottom")
                if regions and not sym:
                    for c, (rname, rmask) in enumerate(regions.items()):
                        rm = _slice(np.asarray(rmask, dtype=np.float64))
                        if rm.any():
                            ax.contour(rm, levels=[0.5], colors=[REGION_COLORS[c % len(REGION_COLORS)]], linewidths=0.6)
                ax.set_xticks([])
                ax.set_yticks([])
                if j == 0:
                    ax.set_ylabel(rows[i][0], fontsize="small")
                if i == 0:
                    ax.set_title(LABELS.get(p, p) + unit_suffix(p))
            fig.colorbar(im, ax=[axes[i, j] for i in idx], shrink=0.8,
                         label=("difference" if sym else LABELS.get(p, p)) + unit_suffix(p))
    handles = []
    if regions:
        handles += [Line2D([], [], color=REGION_COLORS[c % len(REGION_COLORS)], lw=1.2, label=f"{nm} ({int(np.sum(m))} voxels)")
                    for c, (nm, m) in enumerate(regions.items())]
    if "m0s" in parameters:
        handles.append(Line2D([], [], color=NEGATIVE_COLOR, marker="s", lw=0, label="m0s < 0"))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize="small", frameon=False)
    return fig


def _draw(ax: Any, img: NDArray[Any], lo: float, hi: float, sym: bool, nonneg: bool,
          regions: Mapping[str, NDArray[np.bool_]] | None) -> Any:
    """One panel: the map, negative values of a non-negative quantity in their own colour (counted),
    region outlines."""
    from matplotlib.colors import ListedColormap

    im = ax.imshow(img, origin="lower", vmin=lo, vmax=hi, cmap="RdBu_r" if sym else "viridis")
    if nonneg:
        with np.errstate(invalid="ignore"):
            neg = img < 0
        if neg.any():
            ax.imshow(np.where(neg, 1.0, np.nan), origin="lower", cmap=ListedColormap([NEGATIVE_COLOR]), vmin=0, vmax=1,
                      interpolation="nearest")
            ax.text(0.02, 0.02, f"{int(neg.sum())} < 0", transform=ax.transAxes, fontsize="small", color=NEGATIVE_COLOR,
                    va="bottom", fontweight="bold")
    for c, rmask in enumerate((regions or {}).values()):
        rm = _slice(np.asarray(rmask, dtype=np.float64))
        if rm.any():
            ax.contour(rm, levels=[0.5], colors=[REGION_COLORS[c % len(REGION_COLORS)]], linewidths=0.35)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def _plot_side_by_side(maps: Mapping[str, Mapping[str, NDArray[Any]]], reference: str, parameters: Sequence[str],
                       regions: Mapping[str, NDArray[np.bool_]] | None) -> Any:
    """Columns = the reference (NLLS in vivo, the truth for a phantom) and each estimator side by side;
    one row per parameter with a shared colour scale (m0s from 0), then one row per parameter of
    estimate - reference on a symmetric scale shared by the estimators.  Regions are outlined thinly on
    one panel only (the reference's first parameter), so no other map is covered.  Negative m0s estimates are drawn
    in their own colour and counted per panel (over all voxels shown, i.e. the whole mask)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    cols = [reference] + [e for e in maps if e != reference]
    n_p = len(parameters)
    fig, axes = plt.subplots(2 * n_p, len(cols), figsize=(1.45 * len(cols) + 1.3, 1.4 * 2 * n_p + 0.4), squeeze=False,
                             constrained_layout=True)
    for i, p in enumerate(parameters):
        s = DISPLAY_SCALE.get(p, 1.0)
        lab = LABELS.get(p, p) + unit_suffix(p)
        est = [_slice(np.asarray(maps[e][p]) * s) for e in cols]
        lo, hi = _limits(est, False)
        nonneg = p == "m0s"
        if nonneg:
            lo, hi = 0.0, max(hi, 1e-6)
        for j, e in enumerate(cols):
            # outlines on one panel only (the reference's first row), so that no other map is covered
            im = _draw(axes[i, j], est[j], lo, hi, False, nonneg, regions if (i, j) == (0, 0) else None)
            if i == 0:
                axes[i, j].set_title(estimator_label(e).replace(" network", "\nnetwork"), fontsize="medium")
            if j == 0:
                axes[i, j].set_ylabel(lab, fontsize="medium")
        fig.colorbar(im, ax=list(axes[i]), shrink=0.9, label=lab)
        diffs = [est[j] - est[0] for j in range(1, len(cols))]
        dlo, dhi = _limits(diffs, True)
        axes[n_p + i, 0].axis("off")
        what = "estimate" if reference == "truth" else "network"
        axes[n_p + i, 0].text(0.5, 0.5, f"{LABELS.get(p, p)}:\n{what} $-$\n{estimator_label(reference)}",
                              ha="center", va="center", fontsize="medium", transform=axes[n_p + i, 0].transAxes)
        for j in range(1, len(cols)):
            im = _draw(axes[n_p + i, j], diffs[j - 1], dlo, dhi, True, False, None)
        if len(cols) > 1:
            fig.colorbar(im, ax=list(axes[n_p + i]), shrink=0.9, label="difference" + unit_suffix(p))
    handles = [Line2D([], [], color=REGION_COLORS[c % len(REGION_COLORS)], lw=1.2, label=f"{nm} ({int(np.sum(m))} voxels)")
               for c, (nm, m) in enumerate((regions or {}).items())]
    if "m0s" in parameters:
        handles.append(Line2D([], [], color=NEGATIVE_COLOR, marker="s", lw=0, label=r"$m_0^s<0$ (count per panel)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize="medium", frameon=False)
    return fig


def plot_residual_maps(residuals: Mapping[str, NDArray[Any]]) -> Any:
    """Relative residual maps ||y - M0 g|| / ||y|| of every estimator on one shared scale (1)."""
    import matplotlib.pyplot as plt

    names = list(residuals)
    fig, axes = plt.subplots(1, len(names), figsize=(2.4 * len(names) + 0.8, 2.6), squeeze=False, constrained_layout=True)
    lo, hi = _limits(list(residuals.values()), False)
    for ax, e in zip(axes[0], names):
        im = ax.imshow(_slice(residuals[e]), origin="lower", vmin=0.0, vmax=hi, cmap="magma")
        ax.set_title(estimator_label(e), fontsize="small")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label="relative residual")
    return fig
