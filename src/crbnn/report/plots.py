"""One figure style for the whole project, deterministic saving, and the evaluation figures.

* :func:`set_style` - the shared matplotlib/seaborn style (call once per plotting script).
* :func:`save_figure` - PNG and PDF with fixed metadata, so reruns give identical files.
* :func:`plot_learning_curves`, :func:`plot_grid_maps`, :func:`plot_error_distribution` - the
  evaluation figures (one workflow script each).

Estimators are shown in the order and colours of :data:`ESTIMATOR_STYLE`; parameters with
:data:`crbnn.common.parameters.LABELS` (mathtext) in the units of
:data:`crbnn.common.parameters.DISPLAY_UNITS`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crbnn.common.parameters import DISPLAY_SCALE, DISPLAY_UNITS, LABELS

#: Display name and colour of every estimator (figure order).
ESTIMATOR_STYLE: dict[str, tuple[str, str]] = {
    "nlls": ("NLLS", "#333333"),
    "mse": ("MSE network", "#d95f02"),
    "crb": ("CRB network", "#1b9e77"),
    "bias_reduced": ("bias-reduced network", "#7570b3"),
}

SOFTWARE = "crbnn"


def estimator_label(name: str) -> str:
    """Display name of an estimator (its key when unknown).

    >>> estimator_label("crb"), estimator_label("other")
    ('CRB network', 'other')
    """
    return ESTIMATOR_STYLE.get(name, (name, "k"))[0]


def estimator_color(name: str) -> str:
    """Colour of an estimator."""
    return ESTIMATOR_STYLE.get(name, (name, "#888888"))[1]


def unit_suffix(parameter: str) -> str:
    """' (unit)' in display units, or '' for dimensionless parameters.

    >>> unit_suffix("T2f"), unit_suffix("m0s")
    (' (ms)', '')
    """
    u = DISPLAY_UNITS.get(parameter, "")
    return f" ({u})" if u else ""


def set_style(font_scale: float = 0.9) -> None:
    """Apply the project's figure style (seaborn 'ticks', colour-blind palette, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    sns.set_theme(context="paper", style="ticks", palette="colorblind", font_scale=font_scale)
    matplotlib.rcParams.update({
        "figure.dpi": 100,
        "savefig.bbox": "tight",
        "axes.titlesize": "medium",
        "image.interpolation": "nearest",
        "pdf.fonttype": 42,
        "svg.hashsalt": "crbnn",
        "path.simplify": False,
    })


def save_figure(fig: Any, paths: Sequence[str | os.PathLike[str]], dpi: int = 200) -> None:
    """Save ``fig`` to every path (format from the suffix: .png, .pdf) atomically, deterministic metadata."""
    import matplotlib.pyplot as plt

    from crbnn.common.io import atomic_write

    for p in paths:
        suffix = Path(p).suffix.lower()
        if suffix == ".pdf":
            meta: dict[str, Any] = {"CreationDate": None, "ModDate": None, "Producer": SOFTWARE, "Creator": SOFTWARE}
        elif suffix == ".png":
            meta = {"Software": SOFTWARE}
        else:
            meta = {}
        with atomic_write(p) as tmp:
            fig.savefig(tmp, dpi=dpi, metadata=meta, format=suffix.lstrip("."))
    plt.close(fig)


# --------------------------------------------------------------------------- learning curves


def learning_curve_offsets(histories: Mapping[str, Any], continues: Mapping[str, str] | None = None) -> dict[str, int]:
    """Epoch offset of each network: a network that continues another (``{"bias_reduced": "crb"}``
    when it is fine-tuned from the CRB network) starts after that network's selected epoch.

    >>> import pandas as pd
    >>> h = {"crb": pd.DataFrame({"epoch": [1, 2, 3], "best_epoch": [1, 2, 2]}), "bias_reduced": pd.DataFrame({"epoch": [1]})}
    >>> learning_curve_offsets(h, {"bias_reduced": "crb"})
    {'crb': 0, 'bias_reduced': 2}
    """
    out = {name: 0 for name in histories}
    for name, parent in (continues or {}).items():
        if name in histories and parent in histories:
            h = histories[parent]
            out[name] = int(h["best_epoch"].iloc[-1]) if "best_epoch" in h else int(h["epoch"].max())
    return out


def plot_learning_curves(histories: Mapping[str, Any], log_epochs: bool = False,
                         continues: Mapping[str, str] | None = None) -> Any:
    """Validation CRB-normalized loss (and training loss where it is CRB-normalized) per network.

    ``histories`` maps loss name -> ``pandas.DataFrame`` of ``results/train_network/<loss>/history.csv``
    (columns ``epoch``, ``train_loss``, ``val_crb_mean``, ``val_crb_<p>`` and ``best_epoch``).  Left
    panel: mean over parameters; one panel per parameter after it.  A dashed line marks 1 (efficient
    unbiased estimator); a star and a thin vertical line mark the saved (selected) epoch of each
    network; a network that continues another (``continues``, :func:`learning_curve_offsets`) is drawn
    after that network's selected epoch.  The loss axis is logarithmic, the epoch axis linear (where
    the selection happens, late in training, is as wide as the start), logarithmic only with
    ``log_epochs``.
    """
    import matplotlib.pyplot as plt

    from matplotlib.ticker import MaxNLocator

    params = sorted({c[len("val_crb_"):] for h in histories.values() for c in h.columns
                     if c.startswith("val_crb_") and c != "val_crb_mean"},
                    key=lambda p: list(LABELS).index(p) if p in LABELS else 99)
    panels = ["mean", *params]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.2), sharey=True, squeeze=False,
                             layout="constrained")
    offsets = learning_curve_offsets(histories, continues)
    use_log = bool(log_epochs)
    for ax, panel in zip(axes[0], panels):
        for loss, h in histories.items():
            col = "val_crb_mean" if panel == "mean" else f"val_crb_{panel}"
            if col not in h:
                continue
            epoch = h["epoch"] + offsets[loss]
            ax.plot(epoch, h[col], color=estimator_color(loss), label=f"{estimator_label(loss)} (val.)",
                    marker="o" if len(h) < 10 else None, ms=3, lw=0.8)
            if "best_epoch" in h:
                sel = int(h["best_epoch"].iloc[-1])
                row = h[h["epoch"] == sel]
                if len(row):
                    ax.axvline(sel + offsets[loss], color=estimator_color(loss), lw=0.6, alpha=0.6)
                    ax.plot([sel + offsets[loss]], [float(row[col].iloc[0])], marker="*", ms=9,
                            color=estimator_color(loss), mec="k", mew=0.5, ls="none",
                            label=f"saved epoch ({estimator_label(loss)})" if panel == "mean" else None)
            if panel == "mean" and loss == "crb" and "train_loss" in h:
                ax.plot(epoch, h["train_loss"], color=estimator_color(loss), ls=":", label="CRB network (train)")
        ax.axhline(1.0, color="k", ls="--", lw=0.8)
        ax.set_yscale("log")
        if use_log:
            ax.set_xscale("log")
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_title("mean over parameters" if panel == "mean" else LABELS.get(panel, panel))
    axes[0, 0].set_ylabel("CRB-normalized loss")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)), fontsize="small", frameon=False)
    return fig


# ------------------------------------------------------------------------------- SNR sweep

SWEEP_ROWS: dict[str, str] = {
    "mean_loss": "mean CRB-normalized loss",
    "median_abs_bias": r"median |bias| / $\sqrt{\mathrm{CRB}}$",
    "median_std": r"median std / $\sqrt{\mathrm{CRB}}$",
}


def plot_snr_sweep(ds: Any) -> Any:
    """Estimators against the CRB over SNR (``results/evaluate_snr_sweep/sweep.nc``, crbnn.evaluate.snr_sweep).

    Rows: mean CRB-normalized loss (log scale, dashed line at 1 = efficient unbiased estimator),
    median |bias|/sqrt(CRB) and median std/sqrt(CRB) (line at 1); columns: the estimated parameters
    and their mean; bands: 95 % bootstrap intervals over the test samples; log SNR axis.
    """
    import matplotlib.pyplot as plt

    params = [str(p) for p in ds["parameter"].values]
    fig, axes = plt.subplots(len(SWEEP_ROWS), len(params), figsize=(2.5 * len(params), 2.2 * len(SWEEP_ROWS)),
                             sharex=True, sharey="row", squeeze=False)
    snr = ds["snr"].values
    for i, (stat, label) in enumerate(SWEEP_ROWS.items()):
        for j, p in enumerate(params):
            ax = axes[i, j]
            for e in ds["estimator"].values:
                e = str(e)
                v = ds[stat].sel(estimator=e, parameter=p).values
                lo = ds[f"{stat}_lo"].sel(estimator=e, parameter=p).values
                hi = ds[f"{stat}_hi"].sel(estimator=e, parameter=p).values
                ax.plot(snr, v, color=estimator_color(e), marker="o", ms=3, label=estimator_label(e))
                ax.fill_between(snr, lo, hi, color=estimator_color(e), alpha=0.2, lw=0)
            if stat != "median_abs_bias":
                ax.axhline(1.0, color="k", ls="--", lw=0.8)
            if stat == "mean_loss":
                ax.set_yscale("log")
                ax.set_title("mean over parameters" if p == "mean" else LABELS.get(p, p))
            ax.set_xscale("log")
            ax.set_xticks(snr, [f"{s:g}" for s in snr], minor=False)
            ax.xaxis.set_minor_locator(plt.NullLocator())
            if i == len(SWEEP_ROWS) - 1:
                ax.set_xlabel(r"SNR = $|M_0|/\sigma$")
        axes[i, 0].set_ylabel(label)
    axes[0, 0].legend(loc="best", fontsize="small", frameon=False)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------- grid maps

QUANTITIES: dict[str, str] = {
    "bias": "bias",
    "bias_ratio": r"bias / $\sqrt{\mathrm{CRB}}$",
    "std_ratio": r"SD / $\sqrt{\mathrm{CRB}}$",
    "sqrt_crb": r"$\sqrt{\mathrm{CRB}}$",
}
#: colour range of the bias/sqrt(CRB) maps: +- this value (a bias of one sqrt(CRB) is the claim's scale)
BIAS_RATIO_LIMIT = 2.0


def outside_note(data: Any, lo: float, hi: float) -> str:
    """``'; k of n beyond the range (arrows)'`` when ``k`` finite values of ``data`` lie outside
    [lo, hi] (drawn in the end colours of an ``extend='both'`` colour bar), else ``''``.

    >>> outside_note(np.array([0.0, 3.0, np.nan]), -1.0, 1.0)
    '; 1 of 2 beyond the range (arrows)'
    """
    v = np.asarray(data, dtype=np.float64)
    v = v[np.isfinite(v)]
    k = int(((v < lo) | (v > hi)).sum())
    return f"; {k} of {v.size} beyond the range (arrows)" if k else ""


def plot_grid_maps(ds: Any, quantity: str, bias_percentile: float = 98.0, std_ratio_limit: float = 2.0) -> Any:
    """Maps of one quantity on one grid: rows = estimators, columns = estimated parameters.

    ``ds`` is a ``results/evaluate_grid/<grid>.nc`` dataset with two grid axes; ``quantity`` is
    ``bias`` (physical display units, diverging colour scale centred at 0, shared per parameter,
    limits +- the ``bias_percentile`` of |bias|), ``bias_ratio`` (bias/sqrt(CRB), centred at 0,
    +- :data:`BIAS_RATIO_LIMIT`), ``std_ratio`` (SD/sqrt(CRB), diverging on a log scale centred at 1,
    [1/limit, limit]) or ``sqrt_crb`` (one row: it does not depend on the estimator; sequential scale
    over its full range).  Values beyond a colour range are drawn in the end colours, the colour bar has arrows
    and its label counts them (:func:`outside_note`): nothing saturates silently.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm, Normalize, TwoSlopeNorm

    if quantity not in QUANTITIES:
        raise ValueError(f"unknown quantity {quantity!r}; choose from {list(QUANTITIES)}")
    axes_names = [d for d in ds["bias"].dims if d not in ("estimator", "parameter")]
    if len(axes_names) != 2:
        raise ValueError(f"grid maps need a 2-D grid, got axes {axes_names}")
    ya, xa = axes_names  # first axis on the vertical
    params = [str(p) for p in ds["parameter"].values]
    estimators = [str(e) for e in ds["estimator"].values]
    rows = ["all"] if quantity == "sqrt_crb" else estimators
    fig, axs = plt.subplots(len(rows), len(params), figsize=(2.7 * len(params), 2.1 * len(rows) + 1.2),
                            squeeze=False, sharex=True, sharey=True, layout="constrained")
    xv = ds[xa].values * DISPLAY_SCALE.get(xa, 1.0)
    yv = ds[ya].values * DISPLAY_SCALE.get(ya, 1.0)
    for j, p in enumerate(params):
        scale = DISPLAY_SCALE.get(p, 1.0)
        extend = "both"
        if quantity == "bias":
            data = ds["bias"].sel(parameter=p).transpose("estimator", ya, xa).values * scale
            lim = float(np.nanpercentile(np.abs(data), bias_percentile)) if np.isfinite(data).any() else 1.0
            lim = lim if lim > 0 else 1.0
            norm, cmap, label = TwoSlopeNorm(0.0, -lim, lim), "RdBu_r", f"bias ({DISPLAY_UNITS.get(p) or '1'})"
            lo, hi = -lim, lim
        elif quantity == "bias_ratio":
            data = ds["bias_over_sqrt_crb"].sel(parameter=p).transpose("estimator", ya, xa).values
            lo, hi = -BIAS_RATIO_LIMIT, BIAS_RATIO_LIMIT
            norm, cmap, label = TwoSlopeNorm(0.0, lo, hi), "RdBu_r", r"bias / $\sqrt{\mathrm{CRB}}$"
        elif quantity == "std_ratio":
            data = ds["std_over_sqrt_crb"].sel(parameter=p).transpose("estimator", ya, xa).values
            lo, hi = 1.0 / std_ratio_limit, std_ratio_limit
            norm, cmap, label = LogNorm(lo, hi), "PuOr_r", r"SD / $\sqrt{\mathrm{CRB}}$ (log scale)"
        else:
            # the same for every estimator, NaN where one did not run (NLLS on a subset): any finite one
            data = ds["sqrt_crb"].sel(parameter=p).max("estimator", skipna=True).transpose(ya, xa).values[None] * scale
            pos = data[np.isfinite(data) & (data > 0)]
            lo, hi = (float(pos.min()), float(pos.max())) if pos.size else (1.0, 10.0)
            norm, cmap = Normalize(lo, hi if hi > lo else lo * 10), "viridis"
            label = rf"$\sqrt{{\mathrm{{CRB}}}}$ ({DISPLAY_UNITS.get(p) or '1'})"
            extend = "neither"
        im = None
        for i, row in enumerate(rows):
            ax = axs[i, j]
            im = ax.pcolormesh(xv, yv, data[i], norm=norm, cmap=cmap, shading="nearest")
            if i == 0:
                ax.set_title(LABELS.get(p, p))
            if j == 0:
                name = "" if row == "all" else estimator_label(row) + "\n"
                ax.set_ylabel(f"{name}{LABELS.get(ya, ya)}{unit_suffix(ya)}")
            if i == len(rows) - 1:
                ax.set_xlabel(f"{LABELS.get(xa, xa)}{unit_suffix(xa)}")
        note = outside_note(data, lo, hi) if extend == "both" else ""
        cb = fig.colorbar(im, ax=axs[:, j].tolist(), location="bottom", shrink=0.9, aspect=25,
                          extend=extend if note else "neither")
        cb.set_label(label + note.replace("; ", "\n"))
        if quantity == "std_ratio":  # plain tick labels on the log scale: 1/L ... 1 ... L
            ticks = [v for v in (1 / std_ratio_limit, 2 / 3, 1.0, 1.5, std_ratio_limit) if lo <= v <= hi]
            cb.set_ticks(ticks, labels=[f"{v:.2g}" for v in ticks])
            cb.minorticks_off()
    grid = str(ds.attrs.get("grid", ""))
    parts = grid.split("-")
    grid = r" $\times$ ".join(LABELS[x] for x in parts) if all(x in LABELS for x in parts) else grid
    fig.suptitle(f"{QUANTITIES[quantity]} on grid {grid}  "
                 rf"($|M_0|$ = {ds.attrs.get('M0_abs')}, $\sigma$ = {ds.attrs.get('sigma')})", fontsize="medium")
    return fig


# ------------------------------------------------------------------------ error distributions


def plot_error_distribution(ds: Any, limit: float = 6.0) -> Any:
    """Distribution of the per-sample normalized error (est - true)/sqrt(CRB) per estimator and parameter.

    ``ds`` is ``results/evaluate_test_set/errors.nc`` (variable ``normalized_error`` with dims
    ``(estimator, sample, parameter)``, NaN where an estimator did not run).  The violins show the
    errors within +- ``limit``; nothing is clipped silently: the errors beyond are drawn as triangles
    at the edge of the range and counted above/below each violin ("k/n").  Dotted lines: the quartiles
    of the standard normal (the distribution of an efficient unbiased estimator's errors).
    """
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    err = ds["normalized_error"]
    params = [str(p) for p in ds["parameter"].values]
    estimators = [str(e) for e in ds["estimator"].values]
    frames, beyond = [], {}
    for e in estimators:
        for p in params:
            v = err.sel(estimator=e, parameter=p).values
            v = v[np.isfinite(v)]
            beyond[(e, p)] = (int((v > limit).sum()), int((v < -limit).sum()), int(v.size))
            inside = v[np.abs(v) <= limit]
            frames.append(pd.DataFrame({"estimator": estimator_label(e), "parameter": LABELS.get(p, p), "error": inside}))
    df = pd.concat(frames, ignore_index=True)
    fig, ax = plt.subplots(figsize=(2.2 * len(params) + 2.0, 3.4))
    palette = {estimator_label(e): estimator_color(e) for e in estimators}
    sns.violinplot(data=df, x="parameter", y="error", hue="estimator", hue_order=[estimator_label(e) for e in estimators],
                   order=[LABELS.get(p, p) for p in params], palette=palette, cut=0,
                   inner="quartile", density_norm="width", linewidth=0.6, ax=ax)
    for q in (-0.6745, 0.0, 0.6745):
        ax.axhline(q, color="k", ls=":", lw=0.7)
    width = 0.8 / max(len(estimators), 1)
    for j, p in enumerate(params):
        for k, e in enumerate(estimators):
            x = j - 0.4 + width * (k + 0.5)
            up, down, n = beyond[(e, p)]
            for count, y, marker, va in ((up, limit, "^", "bottom"), (down, -limit, "v", "top")):
                if count:
                    ax.plot([x], [y], marker=marker, color=estimator_color(e), ms=4, mec="k", mew=0.3, ls="none")
                    ax.text(x, y * 1.04, f"{count}/{n}", ha="center", va=va, fontsize="xx-small", rotation=90)
    ax.set_ylim(-limit * 1.35, limit * 1.35)
    ax.set_ylabel(r"(estimate $-$ true) / $\sqrt{\mathrm{CRB}}$")
    ax.set_xlabel("")
    ax.legend(frameon=False, fontsize="small", ncol=min(4, len(estimators)), loc="upper center",
              bbox_to_anchor=(0.5, 1.2))
    fig.tight_layout()
    return fig


def latex_table(df: Any, float_format: str = "{:.3g}") -> str:
    """A plain LaTeX ``tabular`` (booktabs) of a ``pandas.DataFrame`` (no jinja2 needed).

    >>> import pandas as pd
    >>> print(latex_table(pd.DataFrame({"a": ["x_1"], "b": [0.12345]})))
    \\begin{tabular}{lr}
    \\toprule
    a & b \\\\
    \\midrule
    x\\_1 & 0.123 \\\\
    \\bottomrule
    \\end{tabular}
    """

    def esc(s: Any) -> str:
        return str(s).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")

    def fmt(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return "--" if not np.isfinite(v) else float_format.format(v)
        return esc(v)

    from pandas.api.types import is_numeric_dtype

    align = "".join("r" if is_numeric_dtype(df[c]) else "l" for c in df.columns)
    lines = [rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(esc(c) for c in df.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(fmt(v) for v in row) + r" \\" for row in df.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)
