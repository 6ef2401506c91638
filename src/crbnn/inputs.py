"""The public inputs of the reproduction, pinned by URL (repository @ commit) and sha256.

Every copy the workflow uses is verified: :func:`fetch_input` copies from a local folder
(``inputs.data_dir`` in the config; machines without internet) or downloads from the pinned URL,
into a temporary file next to the destination, checks its sha256 and only then moves it into place.
A missing file or a hash mismatch raises :class:`InputError` and leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crbnn.io import PathLike, atomic_write, sha256_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublicInput:
    """One public input file: where it comes from and the sha256 of its bytes."""

    name: str
    repository: str
    commit: str
    path: str
    sha256: str
    description: str

    @property
    def url(self) -> str:
        """Download address pinned to the commit."""
        return f"https://raw.githubusercontent.com/{self.repository}/{self.commit}/{self.path}"


INPUTS: dict[str, PublicInput] = {
    i.name: i
    for i in (
        PublicInput(
            name="control_MT_v3p2_TR3p5ms_discretized.mat",
            repository="JakobAsslaender/MRIgeneralizedBloch.jl",
            commit="65ea1cf23c454c921dca9e31cf78e3f28bef8ba1",
            path="docs/control_MT_v3p2_TR3p5ms_discretized.mat",
            sha256="1c4058f3b894b923144d2c08e0e7853f95f2bfdc83fb48c1dbe0c14cb4a663d1",
            description="hybrid-state MT pulse train (1142 pulses, alpha in rad, TRF in s; TR 3.5 ms not stored)",
        ),
        PublicInput(
            name="basis_for_compress.mat",
            repository="quentin-duchemin/MRF-CRBLoss",
            commit="c949b1d76aec232829b4abb8bd8f378ddf7e148f",
            path="paper_data/basis_for_compress.mat",
            sha256="f4e07ba7cf9b323e0e1b03fbe7d4b7f558fc1289861f24bb56bd0996df7fe55b",
            description="temporal subspace basis u (1142 x 100, complex) of that pulse train",
        ),
        PublicInput(
            name="invivo_test_slice.mat",
            repository="quentin-duchemin/MRF-CRBLoss",
            commit="c949b1d76aec232829b4abb8bd8f378ddf7e148f",
            path="paper_data/invivo_test_slice.mat",
            sha256="8f0c7f8ace889e770818a47eaa434daf39176b58056a5cf320d205a5719bb8f4",
            description="in vivo brain slice in the subspace, x (175 x 215 x 26, float32)",
        ),
    )
}


class InputError(RuntimeError):
    """A public input is missing or its sha256 does not match the pinned value."""


def _get_input(name: str) -> PublicInput:
    try:
        return INPUTS[name]
    except KeyError:
        raise InputError(f"unknown public input {name!r}; known: {sorted(INPUTS)}") from None


def fetch_input(
    name: str,
    dest: PathLike,
    data_dir: PathLike | None = None,
    timeout: float = 120.0,
    expected_sha256: str | None = None,
) -> Path:
    """Copy (from ``data_dir``) or download the public input ``name`` to ``dest``, verified.

    ``expected_sha256`` overrides the pinned hash (tests only).  Raises :class:`InputError` when
    the local copy is missing, the download fails, or the sha256 differs; ``dest`` is then not
    created.  Returns ``Path(dest)``.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as src, tempfile.TemporaryDirectory() as out:
    ...     _ = open(os.path.join(src, "control_MT_v3p2_TR3p5ms_discretized.mat"), "wb").write(b"x")
    ...     fetch_input("control_MT_v3p2_TR3p5ms_discretized.mat", os.path.join(out, "c.mat"), src)
    Traceback (most recent call last):
    ...
    crbnn.inputs.InputError: sha256 mismatch for control_MT_v3p2_TR3p5ms_discretized.mat ...
    """
    item = _get_input(name)
    expected = item.sha256 if expected_sha256 is None else expected_sha256
    dest = Path(dest)
    with atomic_write(dest) as tmp:
        if data_dir is not None:
            src = Path(os.path.expanduser(str(data_dir))) / name
            if not src.is_file():
                raise InputError(
                    f"public input {name} not found in data_dir {Path(data_dir).resolve()} "
                    f"(expected {src}); download it from {item.url} or unset inputs.data_dir"
                )
            log.info("copying %s from %s", name, src)
            shutil.copyfile(src, tmp)
            origin = str(src)
        else:
            log.info("downloading %s from %s", name, item.url)
            try:
                with urllib.request.urlopen(item.url, timeout=timeout) as r, open(tmp, "wb") as f:
                    shutil.copyfileobj(r, f)
            except OSError as e:
                raise InputError(
                    f"could not download {name} from {item.url}: {e}; "
                    "without internet, set inputs.data_dir to a folder holding a copy"
                ) from e
            origin = item.url
        actual = sha256_file(tmp)
        if actual != expected:
            raise InputError(
                f"sha256 mismatch for {name} (from {origin}): expected {expected}, got {actual}; "
                "the file is corrupt or not the pinned version; nothing was written"
            )
    log.info("verified %s (sha256 %s) -> %s", name, actual, dest)
    return dest


def load_invivo_slice(path: PathLike) -> "np.ndarray":
    """The public in vivo slice ``x`` [X, Y, 2R] float32 (real parts, then imaginary parts)."""
    import scipy.io

    mat = scipy.io.loadmat(path, variable_names=["x"])
    if "x" not in mat:
        raise InputError(f"{path}: no variable 'x' (expected the public in vivo slice)")
    x = np.asarray(mat["x"], dtype=np.float32)
    if x.ndim != 3 or x.shape[2] % 2:
        raise InputError(f"{path}: x must be [X, Y, 2R], got shape {x.shape}")
    return x


def write_coefficient_image(
    x: "np.ndarray", coefficients_path: PathLike, mask_path: PathLike, voxel_size: "list[float] | tuple[float, ...]"
) -> int:
    """Write [X, Y, 2R] (or [X, Y, Z, 2R]) coefficients as a 4-D float32 NIfTI and a uint8 mask.

    The affine is ``diag(voxel_size, 1)`` (mm, origin at voxel 0).  The mask marks voxels with any
    non-zero coefficient.  Returns the number of voxels in the mask.

    >>> import tempfile, os, numpy as np
    >>> x = np.zeros((4, 3, 4), np.float32); x[1, 1, 0] = 1.0
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_coefficient_image(x, os.path.join(d, "c.nii.gz"), os.path.join(d, "m.nii.gz"), [1, 1, 2])
    1
    """

    from crbnn.io import write_nifti

    img = np.asarray(x, dtype=np.float32)
    if img.ndim == 3:
        img = img[:, :, None, :]
    affine = np.diag([*map(float, voxel_size), 1.0])
    mask = np.any(img != 0, axis=-1).astype(np.uint8)
    write_nifti(coefficients_path, img, affine)
    write_nifti(mask_path, mask, affine)
    return int(mask.sum())
