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

* the estimated parameters (``model.estimated`` of the config, a network's ``meta["estimated"]``; the
  paper's ``m0s`` (1), ``T1`` (s), ``T2f`` (s)): the estimates; NLLS also its other fitted parameters
  (``omega0`` (rad/s) and ``B1`` (1) in the paper's regime; ``Rex`` (1/s), ``T2s`` (s) where they are
  unknown), ``M0_abs`` (a.u., the data's units) and ``M0_phase`` (rad).
* ``sqrt_crb_<p>`` for every estimated p (same units as p): the square root of the Cramer-Rao bound
  at the estimate, with the regime's nuisance parameters unknown (the NLLS fit list, or the network's
  ``meta["nuisance"]``; default complex M0, omega0 and B1, with Rex and T2s known), noise
  sigma as below, ``CRB = CRB(M0 = 1, sigma = 1) * sigma^2 / |M0|^2`` with the best-fitting M0.
* ``residual`` (1): ``||y - M0* g(theta)|| / ||y||`` with the measured coefficients y, the
  coefficients g(theta) simulated at the estimate (M0 = 1) and the best complex
  ``M0* = g^H y / g^H g``.
* ``info.json``: sigma and how it was estimated, voxel counts, timings.

For a network, theta is its estimates with the fitted nuisance parameters (omega0, B1, and
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
from crbnn.common.parameters import M0_PARAMETERS, PAPER_NUISANCE, TISSUE_PARAMETERS
from crbnn.common.parameters import UNITS as PARAMETER_UNITS
from crbnn.physics.noise import crb_scale

log = logging.getLogger(__name__)


def nuisance_of_fit(fit: Sequence[str], estimated: Sequence[str]) -> tuple[str, ...]:
    """Nuisance parameters (Fisher matrix) of an NLLS fit of the tissue parameters ``fit`` that
    estimates ``estimated``: complex M0 and the fitted parameters that are not estimated.

    >>> nuisance_of_fit(["m0s", "T1", "T2f", "omega0", "B1"], ["m0s", "T1", "T2f"])
    ('M0_re', 'M0_im', 'omega0', 'B1')
    >>> nuisance_of_fit(["m0s", "T1", "T2f", "omega0", "B1"], ["m0s", "T1"])
    ('M0_re', 'M0_im', 'T2f', 'omega0', 'B1')
    """
    return (*M0_PARAMETERS, *[p for p in TISSUE_PARAMETERS if p in fit and p not in estimated])


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
    nuisance: Sequence[str] = PAPER_NUISANCE,
    *,
    estimated: Sequence[str],
) -> dict[str, NDArray[Any]]:
    """Best complex M0, residual and CRB (M0 = 1, sigma = 1) at parameter rows ``table`` [n, 7].

    ``y`` [n, R] measured coefficients.  Returns ``M0`` [n] complex, ``cost`` [n] (||y - M0 g||^2),
    ``residual`` [n] (relative), and with ``crb``: ``crb1`` [n, len(estimated)] of ``estimated`` at M0 = 1,
    sigma = 1 with ``nuisance`` unknown (the other tissue parameters known at their table values).
    """
    from crbnn.data.simulate import simulate_coefficients

    out = simulate_coefficients(np.asarray(sequence.alpha), np.asarray(sequence.trf), float(sequence.tr),
                                np.asarray(basis_u), table, estimated=tuple(estimated), nuisance=tuple(nuisance),
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
    nuisance: Sequence[str] = PAPER_NUISANCE,
    *,
    estimated: Sequence[str],
) -> tuple[dict[str, NDArray[np.float32]], float, str]:
    """sqrt(CRB) maps of the ``estimated`` parameters and the residual map at the estimates on ``evaluated`` voxels.

    ``estimates``: ``{name: float [X, Y, Z]}`` (at least the estimated parameters; missing or NaN
    nuisance values come from ``nominal``).  ``nuisance``: the unknowns of the Fisher matrix besides
    the estimated ones.  ``sigma`` None: estimated from the residuals at the estimates with
    dof = 2R - len(estimated) - 2 (the estimated parameters and complex M0).  Returns (maps, sigma,
    sigma_source).
    """
    n = int(evaluated.sum())
    maps: dict[str, NDArray[np.float32]] = {}
    if n == 0:
        for p in estimated:
            maps[f"sqrt_crb_{p}"] = _to_image(np.zeros(0), evaluated)
        maps["residual"] = _to_image(np.zeros(0), evaluated)
        return maps, float("nan") if sigma is None else float(sigma), "none"
    est = {p: v[evaluated] for p, v in estimates.items()}
    table = clip_to_bounds(_full_table(est, nominal, n), bounds)
    y = image.coefficients[evaluated]
    fit = fit_at_estimate(y, table, sequence, basis_u, r2sl=r2sl, crb=True, batch_size=batch_size, nuisance=nuisance,
                          estimated=estimated)
    source = "given"
    if sigma is None:
        sigma = estimate_sigma(fit["cost"], 2 * image.rank - len(estimated) - 2)
        source = "residual at the estimate (nuisance as given), chi2 median, upper bound"
    scale = crb_scale(float(sigma), fit["M0"], floor=np.finfo(float).tiny)
    for k, p in enumerate(estimated):
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
    *,
    estimated: Sequence[str],
) -> tuple[dict[str, NDArray[np.float32]], dict[str, Any]]:
    """NLLS maps on ``evaluated`` voxels (``crbnn.estimate.nlls.fit_nlls``): estimates, nuisance, M0, sqrt(CRB), residual.

    ``settings``: the config section ``nlls`` (``fit``, ``nominal``, ``dictionary``, ``max_iter``,
    ``ftol``, ``xtol``, ``batch_size``); ``estimated``: the parameters of the sqrt(CRB) maps (the
    config's ``model.estimated``; the other fitted ones are nuisance).  Returns (maps, info) with the noise sigma of the module
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
        fa = fit_at_estimate(y, table, sequence, basis_u, r2sl=r2sl, crb=True,
                             nuisance=nuisance_of_fit(fit, estimated), estimated=estimated)
        scale = crb_scale(sigma, fa["M0"], floor=np.finfo(float).tiny)
        for k, p in enumerate(estimated):
            maps[f"sqrt_crb_{p}"] = _to_image(np.sqrt(fa["crb1"][:, k] * scale), evaluated)
        maps["residual"] = _to_image(fa["residual"], evaluated)
    else:
        for p in estimated:
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
