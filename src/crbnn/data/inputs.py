"""The public inputs of the reproduction, pinned by URL (repository @ commit) and sha256.

Every copy the workflow uses is verified: :func:`fetch_input` copies from a local folder
(``inputs.data_dir`` in the config; machines without internet) or downloads from the pinned URL
(or from a mirror: ``inputs.mirror_url`` in the config, else ``$CRBNN_MIRROR_URL``; the file URL is
``<mirror>/<file name>``), into a temporary file next to the destination, checks its sha256 and only
then moves it into place.  A missing file, a failed download or a hash mismatch raises
:class:`InputError` and leaves nothing behind.

Tests and benchmarks get the inputs through :func:`cached_inputs`: ``$CRBNN_DATA_DIR`` when set,
otherwise a user cache (``<cache>/inputs``, see :func:`crbnn.common.io.cache_dir`) filled once by the same
:func:`fetch_input`.
"""

from __future__ import annotations

import logging
import os
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crbnn.common.io import PathLike, atomic_write, cache_dir, sha256_file

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


#: Spatial shape [X, Y] and number R of complex coefficients of the pinned in vivo slice
#: (``invivo_test_slice.mat``, x 175 x 215 x 26 = 2R; fixed by its sha256): the config checks test
#: ``images.invivo_voxels.box``, ``images.regions`` and ``basis.rank`` against them at parse time.
INVIVO_SHAPE = (175, 215)
INVIVO_RANK = 13

#: Environment variable naming a mirror of the public inputs (used when ``inputs.mirror_url`` is null).
MIRROR_ENV = "CRBNN_MIRROR_URL"
#: Environment variable naming a folder that holds the public inputs (tests, benchmarks).
DATA_DIR_ENV = "CRBNN_DATA_DIR"


class InputError(RuntimeError):
    """A public input is missing, cannot be downloaded, or its sha256 does not match the pinned value."""


def resolve_mirror_url(configured: str | None = None) -> str | None:
    """The mirror to download from: ``configured`` (``inputs.mirror_url``), else ``$CRBNN_MIRROR_URL``.

    Empty strings count as unset; ``None`` means the pinned URLs.

    >>> resolve_mirror_url("http://example.org/data/")
    'http://example.org/data/'
    """
    if configured:
        return configured
    return os.environ.get(MIRROR_ENV) or None


def input_url(name: str, mirror_url: str | None = None) -> str:
    """Download address of input ``name``: ``<mirror_url>/<name>``, or the pinned URL without a mirror.

    >>> input_url("basis_for_compress.mat", "http://127.0.0.1:8000/")
    'http://127.0.0.1:8000/basis_for_compress.mat'
    >>> input_url("basis_for_compress.mat").startswith("https://raw.githubusercontent.com/")
    True
    """
    item = _get_input(name)
    if mirror_url:
        return f"{mirror_url.rstrip('/')}/{name}"
    return item.url


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
    mirror_url: str | None = None,
) -> Path:
    """Copy (from ``data_dir``) or download the public input ``name`` to ``dest``, verified.

    Without ``data_dir`` the file comes from :func:`input_url` (``mirror_url`` or the pinned URL);
    ``timeout`` (s) bounds the connection and every read.  ``expected_sha256`` overrides the pinned
    hash (tests only).  Raises :class:`InputError` when the local copy is missing, the download
    fails or times out, or the sha256 differs; ``dest`` is then not created and no temporary file
    is left.  Returns ``Path(dest)``.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as src, tempfile.TemporaryDirectory() as out:
    ...     _ = open(os.path.join(src, "control_MT_v3p2_TR3p5ms_discretized.mat"), "wb").write(b"x")
    ...     fetch_input("control_MT_v3p2_TR3p5ms_discretized.mat", os.path.join(out, "c.mat"), src)
    Traceback (most recent call last):
    ...
    crbnn.data.inputs.InputError: sha256 mismatch for control_MT_v3p2_TR3p5ms_discretized.mat ...
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
            url = input_url(name, mirror_url)
            log.info("downloading %s from %s", name, url)
            try:
                with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
                    shutil.copyfileobj(r, f)
            except (OSError, ValueError) as e:  # URLError, HTTPError, timeouts; ValueError: bad URL
                raise InputError(
                    f"could not download {name} from {url} (timeout {timeout:g} s): {e}; "
                    "without internet, set inputs.data_dir (tests: CRBNN_DATA_DIR) to a folder holding "
                    f"a copy, or inputs.mirror_url ({MIRROR_ENV}) to a mirror"
                ) from e
            origin = url
        actual = sha256_file(tmp)
        if actual != expected:
            raise InputError(
                f"sha256 mismatch for {name} (from {origin}): expected {expected}, got {actual}; "
                "the file is corrupt or not the pinned version; nothing was written"
            )
    log.info("verified %s (sha256 %s) -> %s", name, actual, dest)
    return dest


def cached_inputs(
    cache: PathLike | None = None,
    mirror_url: str | None = None,
    timeout: float = 30.0,
    names: "list[str] | None" = None,
) -> Path:
    """A folder holding verified copies of the public inputs (``names``, default all), for tests.

    ``$CRBNN_DATA_DIR`` when set (used as is: it must hold the files; CI, offline machines).
    Otherwise ``cache`` (default ``<cache_dir()>/inputs``): a file already there is used when its
    sha256 matches, else it is downloaded once with :func:`fetch_input` (from ``mirror_url``, else
    :func:`resolve_mirror_url`, else the pinned URL).  Raises :class:`InputError` with the reason.
    """
    wanted = sorted(INPUTS) if names is None else list(names)
    env_dir = os.environ.get(DATA_DIR_ENV)
    if env_dir:
        folder = Path(env_dir).expanduser().resolve()
        missing = [n for n in wanted if not (folder / n).is_file()]
        if missing:
            raise InputError(f"{DATA_DIR_ENV}={env_dir}: missing {missing}; unset it to download them")
        return folder
    folder = Path(cache).expanduser() if cache is not None else cache_dir() / "inputs"
    mirror = resolve_mirror_url(mirror_url)
    for name in wanted:
        dest = folder / name
        if dest.is_file() and sha256_file(dest) == _get_input(name).sha256:
            continue
        fetch_input(name, dest, timeout=timeout, mirror_url=mirror)
    return folder.resolve()


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

    from crbnn.common.io import write_nifti

    img = np.asarray(x, dtype=np.float32)
    if img.ndim == 3:
        img = img[:, :, None, :]
    affine = np.diag([*map(float, voxel_size), 1.0])
    mask = np.any(img != 0, axis=-1).astype(np.uint8)
    write_nifti(coefficients_path, img, affine)
    write_nifti(mask_path, mask, affine)
    return int(mask.sum())
