"""Statistics of parameter maps over regions: labelled and box regions, the in vivo tissue classes.

* :func:`region_stats`, :func:`percentile_stats`: per estimator, region and parameter mean, SD, and
  against a truth (phantoms) the error and its standard error; whole-mask percentiles.
* :func:`box_regions`: rectangular in-plane regions of the config (``images.regions``).
* :func:`tissue_regions`: in vivo WM / GM / CSF classes from the coefficient image alone (a seeded
  Gaussian mixture of :func:`coefficient_features`), so that no compared estimator selects them.
* :func:`block_standard_error`, :func:`reference_differences`: paired differences to a reference
  estimator with standard errors over non-overlapping voxel blocks (neighbouring voxels are
  correlated).

The parameters are always given (``model.estimated`` in the workflow); the maps are those of
:mod:`crbnn.images.maps`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from crbnn.common.seeds import derive_seed
from crbnn.images.maps import UNITS


def _finite_in(values: NDArray[Any], where: NDArray[np.bool_]) -> NDArray[np.float64]:
    """The finite values of a map inside a region, float64 (NaN voxels are not evaluated)."""
    v = np.asarray(values, dtype=np.float64)[where]
    return v[np.isfinite(v)]


def region_stats(
    maps: Mapping[str, Mapping[str, NDArray[Any]]],
    regions: Mapping[str, NDArray[np.bool_]],
    truth: Mapping[str, NDArray[Any]] | None = None,
    *,
    parameters: Sequence[str],
) -> list[dict[str, Any]]:
    """Per estimator, region and parameter (of ``parameters``, e.g. the estimated ones): n, mean, SD, (truth, error = mean - truth, standard
    error SD / sqrt(n), error / SE); NaN voxels are ignored.  One dict per row."""
    rows = []
    for est, m in maps.items():
        for rname, where in regions.items():
            for p in parameters:
                if p not in m:
                    continue
                v = _finite_in(m[p], where)
                row: dict[str, Any] = {"estimator": est, "region": rname, "parameter": p, "units": UNITS.get(p, ""),
                                       "n": int(len(v)), "mean": float(v.mean()) if len(v) else float("nan"),
                                       "sd": float(v.std(ddof=1)) if len(v) > 1 else float("nan")}
                if truth is not None and p in truth:
                    t = np.asarray(truth[p], dtype=np.float64)[where]
                    tv = float(np.nanmean(t)) if np.isfinite(t).any() else float("nan")
                    se = row["sd"] / np.sqrt(len(v)) if len(v) > 1 else float("nan")
                    row.update({"truth": tv, "error": row["mean"] - tv, "relative_error": (row["mean"] - tv) / tv if tv else float("nan"),
                                "standard_error": se, "error_over_se": (row["mean"] - tv) / se if se and np.isfinite(se) else float("nan")})
                rows.append(row)
    return rows


def percentile_stats(maps: Mapping[str, Mapping[str, NDArray[Any]]], where: NDArray[np.bool_],
                     percentiles: Sequence[float], *, parameters: Sequence[str]) -> list[dict[str, Any]]:
    """Whole-mask percentiles per estimator and parameter (finite voxels of ``where``)."""
    rows = []
    for est, m in maps.items():
        for p in parameters:
            if p not in m:
                continue
            v = _finite_in(m[p], where)
            row: dict[str, Any] = {"estimator": est, "region": "mask", "parameter": p, "units": UNITS.get(p, ""), "n": int(len(v))}
            for q in percentiles:
                row[f"p{q:g}"] = float(np.percentile(v, q)) if len(v) else float("nan")
            rows.append(row)
    return rows


def box_regions(shape: Sequence[int], boxes: Mapping[str, Sequence[int]], mask: NDArray[np.bool_]) -> dict[str, NDArray[np.bool_]]:
    """``{name: [x0, x1, y0, y1]}`` voxel boxes (half-open, all slices) -> masks within ``mask``."""
    out = {}
    for name, b in boxes.items():
        if len(b) != 4:
            raise ValueError(f"region box {name!r} must be [x0, x1, y0, y1], got {b}")
        m = np.zeros(shape, bool)
        m[int(b[0]):int(b[1]), int(b[2]):int(b[3])] = True
        out[name] = m & mask
    return out


#: Default in vivo tissue classes (images.tissue): mixture components in ascending order of the
#: centroid of the first feature, Re(c_2 / c_1), which is T1-weighted (CSF dark, WM bright).
TISSUE_CLASSES: tuple[str, ...] = ("CSF", "PV", "GM", "WM")
#: Default features of the in vivo tissue classes: Re(c_k / c_1) of these (1-based) coefficients.
TISSUE_FEATURES: tuple[int, ...] = (2, 3, 5, 6)


def coefficient_features(
    coefficients: NDArray[np.complexfloating[Any, Any]],
    mask: NDArray[np.bool_],
    features: Sequence[int] = (2, 3),
    filter_size: int = 3,
) -> NDArray[np.float64]:
    """Contrast images of a coefficient image that no estimator produced: ``Re(c_k / c_1)`` for the
    (1-based) coefficient indices ``k`` in ``features``, [X, Y, Z, F] float64 (NaN outside ``mask``).

    ``c_k / c_1`` is ``c_k conj(c_1) / |c_1|^2``: the ratio of two coefficients of the same voxel, so the
    complex M0 (receive sensitivity, proton density, phase) cancels and what is left is the contrast of
    the pulse sequence.  Only real parts are used: the imaginary parts are dominated by off-resonance.
    Each feature image is median-filtered in-plane over ``filter_size`` x ``filter_size`` voxels
    (mask voxels only), so that a voxel's own noise does not decide its class.

    >>> c = np.ones((2, 2, 1, 3), complex); c[..., 1] = 0.5j; c[..., 2] = -0.25
    >>> np.round(coefficient_features(c * (2 - 1j), np.ones((2, 2, 1), bool), (2, 3), 1)[0, 0, 0], 12).tolist()
    [0.0, -0.25]
    """
    from scipy import ndimage

    c = np.asarray(coefficients)
    mask = np.asarray(mask, bool)
    rank = c.shape[-1]
    bad = [k for k in features if not 2 <= int(k) <= rank]
    if bad:
        raise ValueError(f"tissue features {bad}: coefficient indices must lie in 2..{rank} (1-based; c_1 normalizes)")
    c1 = c[..., 0]
    den = np.maximum(np.abs(c1) ** 2, np.finfo(float).tiny)
    out = np.full((*mask.shape, len(features)), np.nan)
    for j, k in enumerate(features):
        v = np.where(mask, (c[..., int(k) - 1] * np.conj(c1)).real / den, np.nan)
        if filter_size > 1:
            import warnings

            with warnings.catch_warnings():  # windows entirely outside the mask give NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                v = ndimage.generic_filter(v, np.nanmedian, size=(filter_size, filter_size, 1), mode="constant", cval=np.nan)
        out[..., j] = np.where(mask, v, np.nan)
    return out


def gaussian_mixture(
    x: NDArray[np.float64], k: int, seed: int, max_iter: int = 200, tol: float = 1e-6,
    init: NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], float]:
    """Seeded Gaussian mixture (full covariances, EM) of the rows of ``x`` [n, d] with ``k`` components.

    Initialized by k-means++ seeding from ``numpy.random.default_rng(seed)`` (or from the centers
    ``init`` [k, d]) and Lloyd iterations; EM stops when the mean log-likelihood changes by less
    than ``tol``.  Returns (posterior [n, k], means [k, d], covariances [k, d, d], mean
    log-likelihood).  Deterministic for a given seed.

    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(0, 1, (200, 2)), rng.normal(8, 1, (100, 2))])
    >>> p, mu, _, _ = gaussian_mixture(x, 2, seed=1)
    >>> sorted(np.bincount(p.argmax(1)).tolist()), sorted(np.round(mu[:, 0]).tolist()) == [0.0, 8.0]
    ([100, 200], True)
    """
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    if n < k * (d + 1):
        raise ValueError(f"{n} voxels are too few for a {k}-class mixture of {d} features")
    if init is not None:
        centers = np.array(init, dtype=np.float64).reshape(k, d)
    else:
        rng = np.random.default_rng(seed)
        centers = x[[int(rng.integers(n))]]
        for _ in range(1, k):  # k-means++ seeding
            d2 = np.min(((x[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)
            centers = np.vstack([centers, x[[int(rng.choice(n, p=d2 / d2.sum()))]]])
    for _ in range(50):  # Lloyd
        lab = np.argmin(((x[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)
        new = np.array([x[lab == j].mean(0) if np.any(lab == j) else centers[j] for j in range(k)])
        if np.allclose(new, centers):
            break
        centers = new
    reg = 1e-6 * np.eye(d)
    w = np.maximum(np.bincount(lab, minlength=k) / n, 1.0 / n)
    mu = centers.copy()
    cov = np.array([np.cov(x[lab == j].T).reshape(d, d) + reg if np.sum(lab == j) > d else np.cov(x.T).reshape(d, d) + reg
                    for j in range(k)])
    prev = -np.inf
    post = np.zeros((n, k))
    mean_ll = -np.inf
    for _ in range(max_iter):
        ll = np.empty((n, k))
        for j in range(k):
            chol = np.linalg.cholesky(cov[j])
            y = (x - mu[j]) @ np.linalg.inv(chol).T  # whitened residuals
            ll[:, j] = np.log(w[j]) - 0.5 * np.einsum("ij,ij->i", y, y) - np.log(np.diag(chol)).sum()
        top = ll.max(1, keepdims=True)
        post = np.exp(ll - top)
        tot = post.sum(1, keepdims=True)
        post /= tot
        mean_ll = float(np.mean(np.log(tot[:, 0]) + top[:, 0]))
        nk = np.maximum(post.sum(0), np.finfo(float).tiny)
        w = nk / n
        mu = (post.T @ x) / nk[:, None]
        for j in range(k):
            dx = x - mu[j]
            cov[j] = (post[:, j, None] * dx).T @ dx / nk[j] + reg
        if abs(mean_ll - prev) < tol:
            break
        prev = mean_ll
    return post, mu, cov, mean_ll


def _polynomial_basis(shape: Sequence[int], where: NDArray[np.bool_], order: int) -> NDArray[np.float64]:
    """In-plane polynomial terms x^i y^j (i + j <= order; x, y scaled to [-1, 1]) at the ``where`` voxels."""
    gx, gy = np.meshgrid(np.linspace(-1, 1, int(shape[0])), np.linspace(-1, 1, int(shape[1])), indexing="ij")
    gx = np.broadcast_to(gx.reshape(gx.shape + (1,) * (len(shape) - 2)), tuple(shape))[where]
    gy = np.broadcast_to(gy.reshape(gy.shape + (1,) * (len(shape) - 2)), tuple(shape))[where]
    return np.stack([gx**i * gy**j for i in range(order + 1) for j in range(order + 1 - i)], axis=1)


def tissue_regions(
    coefficients: NDArray[np.complexfloating[Any, Any]],
    mask: NDArray[np.bool_],
    classes: Sequence[str] = TISSUE_CLASSES,
    report: Sequence[str] = ("WM", "GM"),
    features: Sequence[int] = TISSUE_FEATURES,
    filter_size: int = 3,
    min_probability: float = 0.9,
    erode: int = 0,
    seed: int = 0,
    bias_order: int = 3,
    bias_iterations: int = 5,
    n_init: int = 4,
) -> dict[str, NDArray[np.bool_]]:
    """In vivo tissue regions from the coefficient image alone (no estimator's output decides them).

    1. Features: :func:`coefficient_features` (``Re(c_k / c_1)``, k in ``features``, median-filtered);
       robustly standardized (median, 1.4826 MAD) over the mask.
    2. A ``len(classes)``-component Gaussian mixture of the mask voxels' features
       (:func:`gaussian_mixture`; the best log-likelihood of ``n_init`` starts seeded from ``seed``); the
       components are named ``classes`` in ascending order
       of their mean of the first feature (with the default features ``Re(c_2 / c_1)`` is
       T1-weighted: CSF darkest, WM brightest).  With ``bias_order`` > 0 the mixture alternates
       ``bias_iterations`` times (warm-started) with the fit of a smooth in-plane polynomial bias field of that order
       per feature (weighted least squares of each voxel's residual from its expected class mean;
       Van Leemput et al., IEEE TMI 1999), which removes the slow B1-like shading of the contrast
       that would otherwise put peripheral WM and central GM in one class.
    3. A voxel belongs to class j when its posterior probability of j is at least ``min_probability``
       (partial-volume voxels stay unassigned); each region is then eroded in-plane by ``erode`` voxels.

    Returns ``{name: mask}`` for the names in ``report``.  Regions are reproducible: they depend only on
    the coefficients, the mask and these settings.

    >>> rng = np.random.default_rng(0)
    >>> c = np.ones((12, 12, 1, 3), complex); c[..., 1] = np.where(np.arange(12)[:, None, None] < 6, 0.1, 0.9)
    >>> c[..., 1:] += 0.01 * rng.standard_normal((12, 12, 1, 2))
    >>> r = tissue_regions(c, np.ones((12, 12, 1), bool), ("dark", "bright"), ("bright",), (2, 3), filter_size=1, bias_order=0)
    >>> int(r["bright"].sum()), bool(r["bright"][6:].all())
    (72, True)
    """
    from scipy import ndimage

    mask = np.asarray(mask, bool)
    unknown = [r for r in report if r not in classes]
    if unknown:
        raise ValueError(f"tissue regions {unknown} are not among the classes {list(classes)}")
    feat = coefficient_features(coefficients, mask, features, filter_size)
    inside = mask & np.all(np.isfinite(feat), axis=-1)
    x = feat[inside]
    med = np.median(x, axis=0)
    mad = 1.4826 * np.median(np.abs(x - med), axis=0)
    z = (x - med) / np.where(mad > 0, mad, 1.0)
    basis = _polynomial_basis(mask.shape, inside, bias_order) if bias_order > 0 else None
    bias = np.zeros_like(z)
    # best of n_init seeded starts (EM has local optima), then warm starts while the bias field is refined
    starts = [gaussian_mixture(z, len(classes), derive_seed(seed, f"start_{i}")) for i in range(max(int(n_init), 1))]
    post, mu, cov, _ = max(starts, key=lambda f: f[3])
    for it in range(max(int(bias_iterations), 0) if basis is not None else 0):
        # smooth in-plane bias field (Van Leemput et al. 1999): weighted least squares of the residual
        # from the expected class mean, weights = expected inverse class variance, per feature
        for f in range(z.shape[1]):
            w = post @ (1.0 / cov[:, f, f])
            r = z[:, f] - post @ mu[:, f]
            sw = np.sqrt(w)
            coef, *_ = np.linalg.lstsq(basis * sw[:, None], r * sw, rcond=None)
            bias[:, f] = basis @ coef
        post, mu, cov, _ = gaussian_mixture(z - bias, len(classes), seed, init=mu)
    rank = np.argsort(np.argsort(mu[:, 0]))  # component -> position in ascending order of feature 1
    best = post.argmax(1)
    sure = post[np.arange(len(best)), best] >= float(min_probability)
    out: dict[str, NDArray[np.bool_]] = {}
    for name in report:
        j = list(classes).index(name)
        sel = np.zeros(mask.shape, bool)
        sel[inside] = (rank[best] == j) & sure
        if erode > 0:
            sel = ndimage.binary_erosion(sel, structure=np.ones((3, 3, 1), bool), iterations=int(erode))
        out[name] = sel & mask
    return out


#: Side (voxels) of the non-overlapping blocks of :func:`block_standard_error`: neighbouring voxels
#: of a map are correlated (smooth B1 and B0, the scanner's point-spread function, shared noise of the
#: subspace reconstruction), so the standard error of a regional mean treats blocks, not voxels, as
#: the independent units.
SE_BLOCK_VOXELS = 8


def block_standard_error(values: NDArray[Any], where: NDArray[np.bool_], block: int = SE_BLOCK_VOXELS
                         ) -> tuple[float, int]:
    """Standard error of the mean of ``values[where]`` with non-overlapping ``block``-voxel blocks
    (side ``block`` along every axis of the array) as the independent units, and the number of
    blocks that hold at least one voxel.

    The mean is a ratio estimator over blocks (block sums over block counts); its standard error is
    the cluster (between-block) estimate ``sqrt(B / (B - 1) * sum_b (S_b - n_b m)^2) / n`` with ``S_b``
    the sum and ``n_b`` the number of voxels of block ``b``, ``m`` the mean, ``n`` the voxel count and
    ``B`` the blocks.  NaN with fewer than two blocks.  For independent voxels it is close to
    ``SD / sqrt(n)``; for spatially correlated voxels it is larger.

    >>> v = np.zeros((16, 16)); v[:8] = 1.0  # two halves: blocks are constant
    >>> se, b = block_standard_error(v, np.ones_like(v, bool))
    >>> b, round(se, 3)
    (4, 0.289)
    """
    values = np.asarray(values, dtype=np.float64)
    where = np.asarray(where, dtype=bool) & np.isfinite(values)
    n = int(where.sum())
    if n == 0:
        return float("nan"), 0
    idx = np.nonzero(where)
    shape = [s // block + 1 for s in values.shape]
    label = np.ravel_multi_index(tuple(i // block for i in idx), shape)
    _, inverse, counts = np.unique(label, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=values[where])
    n_blocks = len(counts)
    if n_blocks < 2:
        return float("nan"), n_blocks
    m = sums.sum() / n
    resid = sums - counts * m
    return float(np.sqrt(n_blocks / (n_blocks - 1) * np.sum(resid**2)) / n), n_blocks


def reference_differences(
    maps: Mapping[str, Mapping[str, NDArray[Any]]],
    regions: Mapping[str, NDArray[np.bool_]],
    reference: str = "nlls",
    *,
    parameters: Sequence[str],
    block: int = SE_BLOCK_VOXELS,
) -> list[dict[str, Any]]:
    """Per estimator, region and parameter: n, mean, SD, the mean paired difference to ``reference``
    (estimate - reference over the voxels where both are finite) with its standard error over
    non-overlapping ``block``-voxel blocks (:func:`block_standard_error`; the voxels of a map are
    spatially correlated, so SD / sqrt(n) would be too small), the number of blocks, and for m0s the
    number of negative estimates among the region's voxels.  One dict per row.

    >>> m = {"nlls": {"m0s": np.array([0.1, 0.2, 0.3])}, "net": {"m0s": np.array([0.1, 0.3, -0.1])}}
    >>> rows = reference_differences(m, {"all": np.ones(3, bool)}, parameters=("m0s",), block=1)
    >>> [(r["estimator"], round(r["difference"], 3), r["n_negative"], r["n_blocks"]) for r in rows]
    [('nlls', 0.0, 0, 3), ('net', -0.1, 1, 3)]
    """
    rows = []
    for est, m in maps.items():
        for rname, where in regions.items():
            for p in parameters:
                if p not in m or reference not in maps or p not in maps[reference]:
                    continue
                full = np.asarray(m[p], dtype=np.float64)
                full_ref = np.asarray(maps[reference][p], dtype=np.float64)
                where = np.asarray(where, dtype=bool)
                ok_full = where & np.isfinite(full) & np.isfinite(full_ref)
                v, d = full[ok_full], full[ok_full] - full_ref[ok_full]
                n = int(ok_full.sum())
                se, n_blocks = block_standard_error(full - full_ref, ok_full, block)
                row: dict[str, Any] = {
                    "estimator": est, "region": rname, "parameter": p, "units": UNITS.get(p, ""), "n": n,
                    "mean": float(v.mean()) if n else float("nan"),
                    "sd": float(v.std(ddof=1)) if n > 1 else float("nan"),
                    "difference": float(d.mean()) if n else float("nan"),
                    "difference_se": se,
                    "n_blocks": n_blocks,
                }
                if p == "m0s":
                    vals = full[where]
                    row["n_negative"] = int((vals[np.isfinite(vals)] < 0).sum())
                rows.append(row)
    return rows
