"""Parameter maps of coefficient images: networks and NLLS, sqrt(CRB) at the estimate, residuals.

Input: a coefficient image in the layout of ``resources/invivo/coefficients.nii.gz``: float32
4-D NIfTI [X, Y, Z, 2R], volumes 0..R-1 the real parts and R..2R-1 the imaginary parts of the R
subspace coefficients, plus an optional mask (any non-zero value = inside).

Voxels analysed (the *mask*): inside the mask file (if any), every coefficient finite and at least
one non-zero.  NaN/inf or all-zero voxels are left out, not fatal.  Every output map is float32
with the input's affine and spatial shape [X, Y, Z] and is **NaN outside the mask**; the
sqrt(CRB) and residual maps are also NaN in mask voxels that were not *evaluated* (voxel
subsampling, :func:`select_voxels`, to keep per-voxel physics affordable).

Maps per estimator (``results/images/<image>/<estimator>/<map>.nii.gz``):

* ``m0s`` (1), ``T1`` (s), ``T2f`` (s): the estimates; NLLS also its other fitted parameters
  (``omega0`` (rad/s) and ``B1`` (1) in the paper's regime; ``Rex`` (1/s), ``T2s`` (s) where they are
  unknown), ``M0_abs`` (a.u., the data's units) and ``M0_phase`` (rad).
* ``sqrt_crb_<p>`` for p in m0s, T1, T2f (same units as p): the square root of the Cramer-Rao bound
  at the estimate, with the regime's nuisance parameters unknown (the NLLS fit list, or the network's
  ``meta["nuisance"]``; default complex M0, omega0 and B1, with Rex and T2s known), noise
  sigma as below, ``CRB = CRB(M0 = 1, sigma = 1) * sigma^2 / |M0|^2`` with the best-fitting M0.
* ``residual`` (1): ``||y - M0* g(theta)|| / ||y||`` with the measured coefficients y, the
  coefficients g(theta) simulated at the estimate (M0 = 1) and the best complex
  ``M0* = g^H y / g^H g``.
* ``info.json``: sigma and how it was estimated, voxel counts, timings.

For a network, theta is its (m0s, T1, T2f) with the fitted nuisance parameters (omega0, B1, and
Rex, T2s where unknown) taken from an NLLS fit of the same voxels when given (the workflow), else
from ``nominal``; known parameters are always at their known (``nominal``) values.

**Noise sigma** (per real and imaginary part of a coefficient, in the data's units): from the NLLS
residuals at the optimum, ``||r||^2 / sigma^2 ~ chi^2(2R - P)`` with P = fitted tissue parameters
+ 2 (complex M0), pooled robustly over the evaluated voxels:
``sigma = sqrt(median(||r||^2) / chi2.ppf(0.5, 2R - P))`` (:func:`estimate_sigma`).  Without an
NLLS fit (command line without ``--sigma``) the same formula on the network's residuals (nuisance
at nominal) gives an upper bound: model mismatch counts as noise.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from crbnn.common.io import PathLike, read_nifti, write_json, write_nifti
from crbnn.common.seeds import derive_seed
from crbnn.common.parameters import TISSUE_PARAMETERS
from crbnn.common.parameters import UNITS as PARAMETER_UNITS
from crbnn.physics.noise import crb_scale

log = logging.getLogger(__name__)

#: Estimated parameters (network outputs) and their SI units.
ESTIMATED: tuple[str, ...] = ("m0s", "T1", "T2f")
#: Unknown nuisance parameters of the paper's regime (complex M0, omega0, B1; Rex and T2s known).
NUISANCE: tuple[str, ...] = ("M0_re", "M0_im", "omega0", "B1")


def nuisance_of_fit(fit: Sequence[str]) -> tuple[str, ...]:
    """Nuisance parameters (Fisher matrix) of an NLLS fit of the tissue parameters ``fit``.

    >>> nuisance_of_fit(["m0s", "T1", "T2f", "omega0", "B1"])
    ('M0_re', 'M0_im', 'omega0', 'B1')
    """
    return ("M0_re", "M0_im", *[p for p in TISSUE_PARAMETERS if p in fit and p not in ESTIMATED])
#: Units of the maps: the parameters' (crbnn.common.parameters) and those of M0 and the residual.
UNITS: dict[str, str] = {**PARAMETER_UNITS, "M0_abs": "a.u.", "M0_phase": "rad", "residual": "1"}


class ImageError(ValueError):
    """A coefficient image or mask that cannot be used (message names the file and the problem)."""


@dataclass
class CoefficientImage:
    """Complex coefficients [X, Y, Z, R] (complex128, 0 outside the mask), mask [X, Y, Z], affine 4x4."""

    coefficients: NDArray[np.complex128]
    mask: NDArray[np.bool_]
    affine: NDArray[np.float64]
    source: str = ""
    n_invalid: int = 0  # voxels inside the mask file left out for NaN/inf coefficients
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.mask.shape)  # type: ignore[return-value]

    @property
    def rank(self) -> int:
        return int(self.coefficients.shape[-1])

    def voxels(self, select: NDArray[np.bool_] | None = None) -> NDArray[np.complex128]:
        """Coefficients [n, R] of the mask voxels (or of ``select``), C order."""
        return self.coefficients[self.mask if select is None else select]


def _read_image(path: PathLike, what: str) -> tuple[NDArray[Any], NDArray[np.float64]]:
    """read_nifti, with any failure as one-line :class:`ImageError` naming the file."""
    if not Path(path).is_file():
        raise ImageError(f"{path}: {what} not found")
    try:
        return read_nifti(path)
    except Exception as e:  # nibabel raises ImageFileError, OSError, EOFError, zlib errors, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ImageError(f"{path}: cannot read the {what} as NIfTI ({first})") from None


def read_coefficient_image(path: PathLike, mask_path: PathLike | None = None, rank: int | None = None) -> CoefficientImage:
    """Read a coefficient NIfTI [X, Y, Z, 2R] (and mask [X, Y, Z]); see the module docstring.

    Raises :class:`ImageError` for a wrong number of dimensions, an odd number of volumes, a
    number of coefficients other than ``rank``, or a mask of another shape.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     x = np.zeros((3, 2, 1, 4), np.float32); x[0, 0, 0] = [1, 2, 3, 4]; x[1, 0, 0, 0] = np.nan
    ...     write_nifti(os.path.join(d, "c.nii.gz"), x)
    ...     img = read_coefficient_image(os.path.join(d, "c.nii.gz"), rank=2)
    ...     img.coefficients[0, 0, 0].tolist(), int(img.mask.sum()), img.n_invalid
    ([(1+3j), (2+4j)], 1, 1)
    """
    data, affine = _read_image(path, "coefficient image")
    if data.ndim == 3 and mask_path is None:
        raise ImageError(f"{path}: coefficient image has 3 dimensions {data.shape}; need 4-D [X, Y, Z, 2R] "
                         "(a single slice is [X, Y, 1, 2R])")
    if data.ndim != 4:
        raise ImageError(f"{path}: coefficient image has shape {data.shape}; need 4-D [X, Y, Z, 2R]")
    if data.shape[-1] % 2:
        raise ImageError(f"{path}: {data.shape[-1]} volumes; need 2R (R real parts, then R imaginary parts)")
    r = data.shape[-1] // 2
    if rank is not None and r != rank:
        raise ImageError(f"{path}: {r} complex coefficients ({data.shape[-1]} volumes) but the model/basis "
                         f"expects R = {rank} ({2 * rank} volumes)")
    d = np.asarray(data, dtype=np.float64)
    finite = np.all(np.isfinite(d), axis=-1)
    nonzero = np.any(d != 0, axis=-1) & finite
    inside = np.ones(d.shape[:3], bool)
    if mask_path is not None:
        m, _ = _read_image(mask_path, "mask")
        if m.ndim == 4 and m.shape[-1] == 1:
            m = m[..., 0]
        if m.shape != d.shape[:3]:
            raise ImageError(f"{mask_path}: mask shape {m.shape} differs from the image's spatial shape {d.shape[:3]} ({path})")
        inside = np.asarray(m != 0) & np.isfinite(m)
    mask = inside & nonzero
    n_invalid = int((inside & ~finite).sum())
    c = np.where(mask[..., None], d[..., :r] + 1j * d[..., r:], 0).astype(np.complex128)
    return CoefficientImage(c, mask, affine, str(path), n_invalid)


def select_voxels(mask: NDArray[np.bool_], stride: int = 1, box: Sequence[int] | None = None) -> NDArray[np.bool_]:
    """Mask voxels kept for per-voxel physics: inside ``box`` [x0, x1, y0, y1] (voxel indices,
    half-open; None = all) and on every ``stride``-th row and column (offset stride // 2).

    >>> int(select_voxels(np.ones((8, 8, 1), bool), stride=2).sum()), int(select_voxels(np.ones((8, 8, 1), bool), box=[0, 2, 0, 3]).sum())
    (16, 6)
    """
    if stride < 1:
        raise ValueError(f"voxel stride must be >= 1, got {stride}")
    keep = np.zeros(mask.shape, bool)
    o = stride // 2
    keep[o::stride, o::stride] = True
    if box is not None:
        if len(box) != 4:
            raise ValueError(f"box must be [x0, x1, y0, y1], got {box}")
        x0, x1, y0, y1 = (int(v) for v in box)
        b = np.zeros(mask.shape, bool)
        b[x0:x1, y0:y1] = True
        keep &= b
    return keep & mask


def estimate_sigma(cost: NDArray[np.float64], dof: int) -> float:
    """Noise sigma per real/imaginary part from residual sums of squares ``cost`` [n] with ``dof``
    degrees of freedom (2R - P): ``sqrt(median(cost) / chi2.ppf(0.5, dof))`` over finite entries.

    >>> rng = np.random.default_rng(0)
    >>> round(estimate_sigma((0.1 * rng.standard_normal((4000, 17))) .__pow__(2).sum(1), 17), 2)
    0.1
    """
    from scipy.stats import chi2

    c = np.asarray(cost, dtype=np.float64)
    c = c[np.isfinite(c)]
    if len(c) == 0 or dof < 1:
        return float("nan")
    return float(np.sqrt(np.median(c) / chi2.ppf(0.5, dof)))


def fit_at_estimate(
    y: NDArray[np.complex128],
    table: NDArray[np.float64],
    sequence: Any,
    basis_u: NDArray[np.complex128],
    r2sl: Any = None,
    crb: bool = True,
    batch_size: int = 64,
    nuisance: Sequence[str] = NUISANCE,
) -> dict[str, NDArray[Any]]:
    """Best complex M0, residual and CRB (M0 = 1, sigma = 1) at parameter rows ``table`` [n, 7].

    ``y`` [n, R] measured coefficients.  Returns ``M0`` [n] complex, ``cost`` [n] (||y - M0 g||^2),
    ``residual`` [n] (relative), and with ``crb``: ``crb1`` [n, 3] of m0s, T1, T2f at M0 = 1,
    sigma = 1 with ``nuisance`` unknown (the other tissue parameters known at their table values).
    """
    from crbnn.data.simulate import simulate_coefficients

    out = simulate_coefficients(np.asarray(sequence.alpha), np.asarray(sequence.trf), float(sequence.tr),
                                np.asarray(basis_u), table, estimated=ESTIMATED, nuisance=tuple(nuisance),
                                r2sl=r2sl, batch_size=batch_size, with_jacobian=crb)
    g = out["coefficients"]
    gg = np.maximum((np.abs(g) ** 2).sum(1), np.finfo(float).tiny)
    m0 = (g.conj() * y).sum(1) / gg
    r = y - m0[:, None] * g
    cost = (np.abs(r) ** 2).sum(1)
    res = {"M0": m0, "cost": cost, "residual": np.sqrt(cost) / np.linalg.norm(y, axis=1)}
    if crb:
        res["crb1"] = out["crb"]
    return res


def _full_table(est: Mapping[str, NDArray[np.float64]], nominal: Mapping[str, float], n: int) -> NDArray[np.float64]:
    """[n, 7] table (TISSUE_PARAMETERS) from per-voxel values ``est`` (NaN -> nominal)."""
    t = np.empty((n, len(TISSUE_PARAMETERS)))
    for j, p in enumerate(TISSUE_PARAMETERS):
        v = np.asarray(est[p], dtype=np.float64) if p in est else np.full(n, np.nan)
        t[:, j] = np.where(np.isfinite(v), v, float(nominal[p]))
    return t


def clip_to_bounds(table: NDArray[np.float64], bounds: Mapping[str, Sequence[float]]) -> NDArray[np.float64]:
    """Clip the columns of a [n, 7] table into ``bounds`` (SI) so the physics is defined
    (e.g. a network's T2f >= T1 or m0s < 0); T2f is also kept below T1."""
    t = table.copy()
    for j, p in enumerate(TISSUE_PARAMETERS):
        if p in bounds:
            t[:, j] = np.clip(t[:, j], float(bounds[p][0]), float(bounds[p][1]))
    i1, i2 = TISSUE_PARAMETERS.index("T1"), TISSUE_PARAMETERS.index("T2f")
    t[:, i2] = np.minimum(t[:, i2], 0.999 * t[:, i1])
    return t


def _to_image(values: NDArray[Any], where: NDArray[np.bool_]) -> NDArray[np.float32]:
    out = np.full(where.shape, np.nan, np.float32)
    out[where] = values
    return out


def uncertainty_maps(
    image: CoefficientImage,
    estimates: Mapping[str, NDArray[np.float64]],
    evaluated: NDArray[np.bool_],
    sequence: Any,
    basis_u: NDArray[np.complex128],
    nominal: Mapping[str, float],
    bounds: Mapping[str, Sequence[float]],
    sigma: float | None,
    r2sl: Any = None,
    batch_size: int = 64,
    nuisance: Sequence[str] = NUISANCE,
) -> tuple[dict[str, NDArray[np.float32]], float, str]:
    """sqrt(CRB) maps of m0s, T1, T2f and the residual map at the estimates on ``evaluated`` voxels.

    ``estimates``: ``{name: float [X, Y, Z]}`` (at least m0s, T1, T2f; missing or NaN nuisance
    values come from ``nominal``).  ``nuisance``: the unknowns of the Fisher matrix besides m0s, T1,
    T2f.  ``sigma`` None: estimated from the residuals at the estimates with dof = 2R - 5 (three
    parameters and complex M0).  Returns (maps, sigma, sigma_source).
    """
    n = int(evaluated.sum())
    maps: dict[str, NDArray[np.float32]] = {}
    if n == 0:
        for p in ESTIMATED:
            maps[f"sqrt_crb_{p}"] = _to_image(np.zeros(0), evaluated)
        maps["residual"] = _to_image(np.zeros(0), evaluated)
        return maps, float("nan") if sigma is None else float(sigma), "none"
    est = {p: v[evaluated] for p, v in estimates.items()}
    table = clip_to_bounds(_full_table(est, nominal, n), bounds)
    y = image.coefficients[evaluated]
    fit = fit_at_estimate(y, table, sequence, basis_u, r2sl=r2sl, crb=True, batch_size=batch_size, nuisance=nuisance)
    source = "given"
    if sigma is None:
        sigma = estimate_sigma(fit["cost"], 2 * image.rank - len(ESTIMATED) - 2)
        source = "residual at the estimate (nuisance as given), chi2 median, upper bound"
    scale = crb_scale(float(sigma), fit["M0"], floor=np.finfo(float).tiny)
    for k, p in enumerate(ESTIMATED):
        maps[f"sqrt_crb_{p}"] = _to_image(np.sqrt(fit["crb1"][:, k] * scale), evaluated)
    maps["residual"] = _to_image(fit["residual"], evaluated)
    return maps, float(sigma), source


def network_maps(model: Any, image: CoefficientImage) -> tuple[dict[str, NDArray[np.float32]], float]:
    """Estimate maps (``model.meta["estimated"]``) of a network on the mask voxels; (maps, seconds)."""
    from crbnn.learn.model_file import predict

    t0 = time.perf_counter()
    est = predict(model, image.voxels())
    dt = time.perf_counter() - t0
    names = list(model.meta["estimated"])
    return {p: _to_image(est[:, k], image.mask) for k, p in enumerate(names)}, dt


def check_model_image(model: Any, image: CoefficientImage, basis_sha256: str | None = None,
                      basis_source: str = "basis") -> None:
    """Raise :class:`ImageError` if the image's R or the basis hash differ from the network's.

    ``basis_source`` (the basis file) starts the message of a hash mismatch.
    """
    rank = int(model.meta.get("rank", model.widths[0] // 2))
    if image.rank != rank:
        raise ImageError(f"{image.source}: {image.rank} complex coefficients, but the network was trained with R = {rank}")
    if basis_sha256 is not None and model.meta.get("basis_sha256") not in (None, basis_sha256):
        raise ImageError(f"{basis_source}: basis sha256 {basis_sha256} differs from the network's basis_sha256 "
                         f"{model.meta.get('basis_sha256')}; the coefficients mean something else for this network")


def nlls_maps(
    image: CoefficientImage,
    evaluated: NDArray[np.bool_],
    sequence: Any,
    basis_u: NDArray[np.complex128],
    settings: Mapping[str, Any],
    bounds: Mapping[str, Sequence[float]],
    r2sl: Any = None,
    device: Any = "cpu",
    workers: int = 1,
) -> tuple[dict[str, NDArray[np.float32]], dict[str, Any]]:
    """NLLS maps on ``evaluated`` voxels (``crbnn.estimate.nlls.fit_nlls``): estimates, nuisance, M0, sqrt(CRB), residual.

    ``settings``: the config section ``nlls`` (``fit``, ``nominal``, ``dictionary``, ``max_iter``,
    ``ftol``, ``xtol``, ``batch_size``).  Returns (maps, info) with the noise sigma of the module
    docstring in ``info["sigma"]``.
    """
    from crbnn.estimate.nlls import fit_nlls_with_settings

    fit = tuple(settings["fit"])
    y = image.coefficients[evaluated]
    res = fit_nlls_with_settings(y, sequence, basis_u, settings, bounds, r2sl=r2sl, device=device, workers=workers,
                                 log=log.info)
    dof = 2 * image.rank - len(fit) - 2
    sigma = estimate_sigma(res.cost, dof)
    maps: dict[str, NDArray[np.float32]] = {p: _to_image(res.get([p])[:, 0], evaluated) for p in fit}
    maps["M0_abs"] = _to_image(np.abs(res.M0), evaluated)
    maps["M0_phase"] = _to_image(np.angle(res.M0), evaluated)
    est = {p: res.get([p])[:, 0] for p in fit}
    n = len(y)
    if n:
        table = _full_table(est, settings["nominal"], n)
        fa = fit_at_estimate(y, table, sequence, basis_u, r2sl=r2sl, crb=True, nuisance=nuisance_of_fit(fit))
        scale = crb_scale(sigma, fa["M0"], floor=np.finfo(float).tiny)
        for k, p in enumerate(ESTIMATED):
            maps[f"sqrt_crb_{p}"] = _to_image(np.sqrt(fa["crb1"][:, k] * scale), evaluated)
        maps["residual"] = _to_image(fa["residual"], evaluated)
    else:
        for p in (*ESTIMATED,):
            maps[f"sqrt_crb_{p}"] = _to_image(np.zeros(0), evaluated)
        maps["residual"] = _to_image(np.zeros(0), evaluated)
    info = {"sigma": sigma, "sigma_source": f"NLLS residuals, sqrt(median(||r||^2) / chi2.ppf(0.5, {dof}))",
            "dof": dof, "n_evaluated": n, "n_converged": int(res.converged.sum()),
            "seconds": res.time_s, "seconds_per_voxel": res.time_s / max(n, 1), "fit": list(fit)}
    return maps, info


def write_maps(outdir: PathLike, maps: Mapping[str, NDArray[Any]], affine: NDArray[np.float64],
               info: Mapping[str, Any] | None = None) -> list[Path]:
    """Write every map as ``<outdir>/<name>.nii.gz`` (float32, ``affine``) and ``info.json``; atomic."""
    out = Path(outdir)
    paths = []
    for name, m in maps.items():
        p = out / f"{name}.nii.gz"
        write_nifti(p, np.asarray(m, dtype=np.float32), affine)
        paths.append(p)
    if info is not None:
        write_json(out / "info.json", dict(info))
    return paths


def read_maps(folder: PathLike, names: Sequence[str]) -> dict[str, NDArray[np.float32]]:
    """Read ``<folder>/<name>.nii.gz`` maps (missing names are skipped)."""
    out = {}
    for n in names:
        p = Path(folder) / f"{n}.nii.gz"
        if p.exists():
            out[n] = read_nifti(p)[0]
    return out


def read_info(folder: PathLike) -> dict[str, Any]:
    """``<folder>/info.json`` as a dict."""
    return json.loads((Path(folder) / "info.json").read_text())


# ---------------------------------------------------------------------------- region statistics


def _finite_in(values: NDArray[Any], where: NDArray[np.bool_]) -> NDArray[np.float64]:
    """The finite values of a map inside a region, float64 (NaN voxels are not evaluated)."""
    v = np.asarray(values, dtype=np.float64)[where]
    return v[np.isfinite(v)]


def region_stats(
    maps: Mapping[str, Mapping[str, NDArray[Any]]],
    regions: Mapping[str, NDArray[np.bool_]],
    truth: Mapping[str, NDArray[Any]] | None = None,
    parameters: Sequence[str] = ESTIMATED,
) -> list[dict[str, Any]]:
    """Per estimator, region and parameter: n, mean, SD, (truth, error = mean - truth, standard
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
                     percentiles: Sequence[float], parameters: Sequence[str] = ESTIMATED) -> list[dict[str, Any]]:
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
    parameters: Sequence[str] = ESTIMATED,
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
