"""Numerical phantoms with known ground truth: a vial phantom and a brain-like phantom.

A phantom is a set of 2-D parameter maps (one slice, shape [X, Y, 1]) of the paper's model:
the tissue parameters ``m0s`` (1), ``T1`` (s), ``T2f`` (s), ``Rex`` (1/s), ``T2s`` (s), the
field maps ``omega0`` (rad/s, smooth linear/quadratic off-resonance) and ``B1`` (1, smooth bowl),
and a complex ``M0`` (a.u., smooth magnitude and phase).  Regions carry integer labels (0 =
background, outside the object: no signal, not in the mask).

* **vials**: a water-like container (``background`` values) with ``len(vials)`` vials: one in the
  centre and the others on a ring; label k + 1 for vial k, ``len(vials) + 1`` for the water.
* **brain**: an ellipse of gray matter (label 2) around white matter (label 1) with two CSF-like
  ventricles (label 3) and a thin CSF rim outside the gray matter.

:func:`simulate_phantom` simulates each voxel's subspace coefficients with
``crbnn.data.simulate.simulate_coefficients`` (no interpolation, no shared values), multiplies by
M0 and adds white complex Gaussian noise of standard deviation ``sigma = m0_magnitude / snr`` on
each real and imaginary part (the same convention as the training noise: ``sigma`` per part at
|M0| = ``m0_magnitude``).  Everything is deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from crbnn.common.parameters import TISSUE_PARAMETERS, UNITS
from crbnn.physics.noise import add_noise, sigma_for_snr

#: Tissue parameters a region specifies (the field maps omega0 and B1 are images).
REGION_PARAMETERS: tuple[str, ...] = ("m0s", "T1", "T2f", "Rex", "T2s")
#: Default values of Rex (1/s) and T2s (s) when a region leaves them out and the model does not hold
#: them known (white matter, Assländer et al. MRM 2022).
REGION_DEFAULTS: dict[str, float] = {"Rex": 13.6, "T2s": 1.25e-5}
#: Kinds of phantom.
KINDS: tuple[str, ...] = ("vials", "brain")


@dataclass
class Phantom:
    """Ground truth of one phantom slice.

    ``maps``: ``{name: float64 [X, Y, 1]}`` for every name of :data:`TISSUE_PARAMETERS` (SI units,
    NaN outside the object); ``m0``: complex128 [X, Y, 1] (0 outside); ``labels``: int16 [X, Y, 1]
    (0 = background); ``mask``: bool [X, Y, 1]; ``regions``: ``{label: name}``; ``affine``: 4x4 (mm).
    """

    kind: str
    maps: dict[str, NDArray[np.float64]]
    m0: NDArray[np.complex128]
    labels: NDArray[np.int16]
    regions: dict[int, str]
    affine: NDArray[np.float64]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def mask(self) -> NDArray[np.bool_]:
        """Voxels inside the object."""
        return self.labels > 0

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.labels.shape)

    def table(self) -> NDArray[np.float64]:
        """Parameter table [n, 7] (columns TISSUE_PARAMETERS) of the mask voxels, C order."""
        m = self.mask
        return np.stack([self.maps[p][m] for p in TISSUE_PARAMETERS], axis=1)


def _region_values(name: str, spec: Mapping[str, Any], known: Mapping[str, float] | None = None) -> dict[str, float]:
    """Complete a region's values with ``known`` and :data:`REGION_DEFAULTS`; check the model's constraints.

    ``known``: values of parameters the model holds known (:mod:`crbnn.config.regime`); a region that sets
    one of them to another value is an error.
    """
    known = dict(known or {})
    given = {k: float(v) for k, v in spec.items() if k != "name"}
    for p, v in known.items():
        if p in given and not np.isclose(given[p], v, rtol=1e-12, atol=0.0):
            raise ValueError(f"phantom region {name!r}: {p} = {given[p]} but the model holds {p} known at {v}")
    vals = {**REGION_DEFAULTS, **known, **given}
    missing = [p for p in REGION_PARAMETERS if p not in vals]
    unknown = [k for k in vals if k not in REGION_PARAMETERS]
    if missing or unknown:
        raise ValueError(f"phantom region {name!r}: missing {missing} / unknown {unknown} keys; "
                         f"give {REGION_PARAMETERS}")
    if not 0.0 <= vals["m0s"] < 1.0:
        raise ValueError(f"phantom region {name!r}: m0s = {vals['m0s']} must lie in [0, 1)")
    if not 0.0 < vals["T2f"] < vals["T1"]:
        raise ValueError(f"phantom region {name!r}: need 0 < T2f < T1, got T2f = {vals['T2f']} s, T1 = {vals['T1']} s")
    if vals["Rex"] <= 0 or vals["T2s"] <= 0:
        raise ValueError(f"phantom region {name!r}: Rex and T2s must be > 0, got {vals['Rex']}, {vals['T2s']}")
    return vals


def _grid(shape: Sequence[int]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Normalized coordinates x, y in [-1, 1] (voxel centres) of an [X, Y] grid."""
    nx, ny = int(shape[0]), int(shape[1])
    x = (np.arange(nx) + 0.5) / nx * 2 - 1
    y = (np.arange(ny) + 0.5) / ny * 2 - 1
    return np.meshgrid(x, y, indexing="ij")


def vial_labels(shape: Sequence[int], n_vials: int, container_radius: float = 0.9, ring_radius: float = 0.55,
                vial_radius: float | None = None) -> NDArray[np.int16]:
    """Labels [X, Y] of a vial phantom: vial k -> k + 1 (k = 0 centre, others on a ring), water -> n + 1.

    Radii are fractions of the half field of view.

    >>> lab = vial_labels((16, 16), 9)
    >>> sorted(set(lab.ravel().tolist())) == list(range(11))
    True
    """
    if n_vials < 1:
        raise ValueError(f"need at least one vial, got {n_vials}")
    x, y = _grid(shape)
    lab = np.zeros(x.shape, np.int16)
    lab[x**2 + y**2 <= container_radius**2] = n_vials + 1
    n_ring = n_vials - 1
    if vial_radius is None:
        spacing = 2 * np.pi * ring_radius / max(n_ring, 1)
        vial_radius = min(0.38 * spacing, 0.6 * ring_radius, 0.22)
    centres = [(0.0, 0.0)] + [(ring_radius * np.cos(2 * np.pi * k / n_ring), ring_radius * np.sin(2 * np.pi * k / n_ring))
                              for k in range(n_ring)]
    for k, (cx, cy) in enumerate(centres):
        d2 = (x - cx) ** 2 + (y - cy) ** 2
        inside = d2 <= vial_radius**2
        if not inside.any():  # tiny grids: at least the nearest voxel
            inside = d2 == d2.min()
        lab[inside] = k + 1
    return lab


def brain_labels(shape: Sequence[int]) -> NDArray[np.int16]:
    """Labels [X, Y] of a brain-like slice: 1 WM, 2 GM (cortical band), 3 CSF (ventricles and rim).

    >>> lab = brain_labels((16, 16))
    >>> sorted(set(lab.ravel().tolist()))
    [0, 1, 2, 3]
    """
    x, y = _grid(shape)
    r_out = (x / 0.92) ** 2 + (y / 0.75) ** 2
    r_gm = (x / 0.85) ** 2 + (y / 0.68) ** 2
    r_wm = (x / 0.62) ** 2 + (y / 0.47) ** 2
    lab = np.zeros(x.shape, np.int16)
    lab[r_out <= 1] = 3
    lab[r_gm <= 1] = 2
    lab[r_wm <= 1] = 1
    for cx in (-0.17, 0.17):
        lab[((x - cx) / 0.12) ** 2 + (y / 0.3) ** 2 <= 1] = 3
    return lab


def smooth_fields(shape: Sequence[int], b1_range: Sequence[float], omega0_max: float, m0_magnitude: float,
                  m0_variation: float, m0_phase: float, m0_phase_ramp: float
                  ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.complex128]]:
    """Smooth B1 (1), omega0 (rad/s) and complex M0 (a.u.) maps [X, Y].

    B1: a quadratic bowl from ``b1_range[1]`` at the centre to ``b1_range[0]`` at the corners;
    omega0: ``omega0_max * (0.7 x + 0.3 y^2)``; M0: magnitude ``m0_magnitude * (1 + m0_variation x y)``
    (a saddle), phase ``m0_phase + m0_phase_ramp * (x + y) / 2`` (rad).

    >>> b1, w, m0 = smooth_fields((8, 8), (0.8, 1.2), 100.0, 1.0, 0.2, 0.5, 1.0)
    >>> bool(b1.min() >= 0.8 and b1.max() <= 1.2 and np.abs(w).max() <= 100.0)
    True
    """
    lo, hi = (float(v) for v in b1_range)
    if not 0 < lo <= hi:
        raise ValueError(f"phantom b1_range must be 0 < low <= high, got {b1_range}")
    if not 0 <= m0_variation < 1:
        raise ValueError(f"phantom m0_variation must lie in [0, 1), got {m0_variation}")
    x, y = _grid(shape)
    r2 = (x**2 + y**2) / 2
    b1 = hi - (hi - lo) * r2
    omega0 = omega0_max * (0.7 * x + 0.3 * y**2)
    mag = m0_magnitude * (1 + m0_variation * x * y)
    m0 = mag * np.exp(1j * (m0_phase + m0_phase_ramp * (x + y) / 2))
    return b1, omega0, m0.astype(np.complex128)


def make_phantom(kind: str, settings: Mapping[str, Any], known: Mapping[str, float] | None = None) -> Phantom:
    """Ground-truth phantom ``kind`` ('vials' | 'brain') from the config section ``phantom``.

    ``known``: values of the parameters the model holds known (``crbnn.config.regime.known_values``); every
    region takes them.

    ``settings`` keys (see workflow/schemas/phantom.schema.yaml): ``size`` [X, Y], ``voxel_size``
    [3] mm, ``b1_range``, ``omega0_max`` (rad/s), ``m0_magnitude``, ``m0_variation``, ``m0_phase``,
    ``m0_phase_ramp`` (rad), and ``vials`` (``background``: water values, ``vials``: list of region
    dicts) or ``brain`` (``WM``, ``GM``, ``CSF`` region dicts).

    >>> s = {"size": [8, 8], "vials": {"background": {"m0s": 0.0, "T1": 2.0, "T2f": 0.2},
    ...      "vials": [{"m0s": 0.1, "T1": 1.0, "T2f": 0.05}, {"m0s": 0.2, "T1": 0.8, "T2f": 0.04}]}}
    >>> p = make_phantom("vials", s)
    >>> p.shape, p.regions[3], float(np.nanmax(p.maps["m0s"]))
    ((8, 8, 1), 'water', 0.2)
    """
    size = [int(v) for v in settings.get("size", [32, 32])]
    if len(size) != 2 or min(size) < 4:
        raise ValueError(f"phantom.size must be [X, Y] with X, Y >= 4, got {size}")
    if kind == "vials":
        vs = settings["vials"]
        vial_specs = list(vs["vials"])
        lab = vial_labels(size, len(vial_specs))
        regions = {k + 1: str(v.get("name", f"vial{k + 1}")) for k, v in enumerate(vial_specs)}
        regions[len(vial_specs) + 1] = "water"
        values = {k + 1: _region_values(regions[k + 1], v, known) for k, v in enumerate(vial_specs)}
        values[len(vial_specs) + 1] = _region_values("water", vs["background"], known)
    elif kind == "brain":
        bs = settings["brain"]
        lab = brain_labels(size)
        regions = {1: "WM", 2: "GM", 3: "CSF"}
        values = {k: _region_values(name, bs[name], known) for k, name in regions.items()}
    else:
        raise ValueError(f"unknown phantom kind {kind!r}; choose from {KINDS}")
    b1, omega0, m0 = smooth_fields(size, settings.get("b1_range", (0.8, 1.2)), float(settings.get("omega0_max", 100.0)),
                                   float(settings.get("m0_magnitude", 1.0)), float(settings.get("m0_variation", 0.2)),
                                   float(settings.get("m0_phase", 0.5)), float(settings.get("m0_phase_ramp", 1.0)))
    inside = lab > 0
    maps: dict[str, NDArray[np.float64]] = {}
    for p in REGION_PARAMETERS:
        m = np.full(lab.shape, np.nan)
        for k, v in values.items():
            m[lab == k] = v[p]
        maps[p] = m
    maps["omega0"] = np.where(inside, omega0, np.nan)
    maps["B1"] = np.where(inside, b1, np.nan)
    vox = [float(v) for v in settings.get("voxel_size", [1.0, 1.0, 1.0])]
    affine = np.diag([*vox, 1.0])
    maps = {p: maps[p][:, :, None] for p in TISSUE_PARAMETERS}
    return Phantom(kind, maps, np.where(inside, m0, 0)[:, :, None], lab[:, :, None], regions, affine,
                   meta={"values": {regions[k]: v for k, v in values.items()},
                         "m0_magnitude": float(settings.get("m0_magnitude", 1.0))})


def simulate_phantom(
    phantom: Phantom,
    sequence: Any,
    basis_u: NDArray[np.complex128],
    snr: float | None,
    seed: int,
    r2sl: Any = None,
    batch_size: int = 256,
) -> tuple[NDArray[np.complex128], NDArray[np.complex128], float]:
    """Noise-free and noisy coefficient images [X, Y, 1, R] (complex128) and the noise sigma.

    Every mask voxel is simulated (paper parametrization, M0 = 1), compressed with ``basis_u``
    [N, R] and multiplied by the voxel's complex M0.  Noise: white complex Gaussian with
    ``sigma = m0_magnitude / snr`` per real and imaginary part (``m0_magnitude`` from
    ``phantom.meta``, default the mean |M0|) in the mask only; ``snr = None`` gives sigma = 0.
    Deterministic for ``seed`` (numpy PCG64).
    """
    from crbnn.data.simulate import simulate_coefficients

    table = phantom.table()
    out = simulate_coefficients(np.asarray(sequence.alpha), np.asarray(sequence.trf), float(sequence.tr),
                                np.asarray(basis_u), table, r2sl=r2sl, batch_size=batch_size, with_jacobian=False)
    mask = phantom.mask
    rank = basis_u.shape[1]
    clean = np.zeros((*phantom.shape, rank), np.complex128)
    clean[mask] = out["coefficients"] * phantom.m0[mask][:, None]
    if snr is None or snr == 0:
        return clean, clean.copy(), 0.0
    if snr < 0:
        raise ValueError(f"phantom.snr must be > 0 (or null for no noise), got {snr}")
    ref = float(phantom.meta.get("m0_magnitude", np.abs(phantom.m0[mask]).mean()))
    sigma = sigma_for_snr(snr, ref)
    noisy = clean.copy()
    noisy[mask] = add_noise(np.random.default_rng(seed), clean[mask], sigma)
    return clean, noisy, sigma


def coefficients_to_nifti_array(c: NDArray[np.complexfloating]) -> NDArray[np.float32]:
    """Complex [X, Y, Z, R] -> float32 [X, Y, Z, 2R] (real parts, then imaginary parts).

    >>> coefficients_to_nifti_array(np.array([[[[1 + 2j]]]])).ravel().tolist()
    [1.0, 2.0]
    """
    return np.concatenate([c.real, c.imag], axis=-1).astype(np.float32)


def write_phantom(phantom: Phantom, clean: NDArray[np.complex128], noisy: NDArray[np.complex128], sigma: float,
                  outputs: Mapping[str, str], seed: int, snr: float | None) -> None:
    """Write the phantom's files (atomic): ``coefficients`` (noisy), ``coefficients_noisefree``,
    ``mask`` (uint8), ``labels`` (int16), ``truth`` (a folder: one float32 map per name of
    TISSUE_PARAMETERS plus ``M0_abs``, ``M0_phase``) and ``regions`` (JSON: labels, values, sigma)."""
    from pathlib import Path

    from crbnn.common.io import write_json, write_nifti

    aff = phantom.affine
    write_nifti(outputs["coefficients"], coefficients_to_nifti_array(noisy), aff)
    write_nifti(outputs["coefficients_noisefree"], coefficients_to_nifti_array(clean), aff)
    write_nifti(outputs["mask"], phantom.mask.astype(np.uint8), aff)
    write_nifti(outputs["labels"], phantom.labels.astype(np.int16), aff)
    truth = Path(outputs["truth"])
    for p in TISSUE_PARAMETERS:
        write_nifti(truth / f"{p}.nii.gz", phantom.maps[p].astype(np.float32), aff)
    m0 = np.where(phantom.mask, phantom.m0, np.nan)
    write_nifti(truth / "M0_abs.nii.gz", np.abs(m0).astype(np.float32), aff)
    write_nifti(truth / "M0_phase.nii.gz", np.angle(m0).astype(np.float32), aff)
    write_json(outputs["regions"], {
        "kind": phantom.kind, "regions": {str(k): v for k, v in phantom.regions.items()},
        "values": phantom.meta["values"], "sigma": sigma, "snr": snr, "seed": seed,
        "noise": "white complex Gaussian, sigma per real and imaginary part of each coefficient",
        "units": {p: UNITS[p] for p in TISSUE_PARAMETERS},
    })
