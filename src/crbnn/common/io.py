"""Small file helpers shared by the whole project: hashes, atomic writes, NIfTI and HDF5.

Every file the workflow writes goes through :func:`atomic_write` (or a function built on it), so a
job that fails or is killed never leaves a half-written output that Snakemake could mistake for a
finished one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

PathLike = str | os.PathLike[str]


def sha256_file(path: PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks of ``chunk_size`` bytes.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "x.txt")
    ...     _ = open(p, "wb").write(b"abc")
    ...     sha256_file(p)[:16]
    'ba7816bf8f01cfea'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def sha256_arrays(*arrays: NDArray[Any] | bytes) -> str:
    """Hex sha256 of the concatenated C-contiguous bytes of ``arrays`` (dtype as given; ``bytes`` as they
    are, e.g. a JSON header).  The one hash of array contents: sequences, bases, training data, weights.

    >>> sha256_arrays(np.zeros(2))[:12]
    '374708fff771'
    >>> sha256_arrays(np.zeros(2), b"x") == sha256_arrays(np.zeros(2).tobytes() + b"x")
    True
    """
    h = hashlib.sha256()
    for a in arrays:
        h.update(a if isinstance(a, bytes) else np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@contextlib.contextmanager
def atomic_write(path: PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it onto ``path`` atomically.

    The parent directory is created.  On any exception the temporary file is removed and
    ``path`` is left untouched (absent if it did not exist).  ``suffix`` defaults to the suffixes
    of ``path`` so that libraries choosing a format by extension (NIfTI ``.nii.gz``) still work.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     target = os.path.join(d, "sub", "out.txt")
    ...     with atomic_write(target) as tmp:
    ...         _ = tmp.write_text("done")
    ...     open(target).read()
    'done'
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    sfx = "".join(target.suffixes) if suffix is None else suffix
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{sfx}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():  # mkstemp creates 0600; give the result the usual umask permissions
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_torch(path: PathLike, obj: Any) -> None:
    """``torch.save(obj)`` through :func:`atomic_write` (usual permissions, no temporary left)."""
    import torch

    with atomic_write(path) as tmp:
        torch.save(obj, tmp)


def cache_dir() -> Path:
    """The user cache of the project: ``$CRBNN_CACHE_DIR`` or ``~/.cache/crbnn``.

    Holds the R2sl tables of :func:`crbnn.physics.r2sl.default_table` and, under ``inputs/``, the public
    inputs fetched for tests and benchmarks (:func:`crbnn.data.inputs.cached_inputs`).

    >>> import os
    >>> os.environ["CRBNN_CACHE_DIR"] = "/tmp/x"; str(cache_dir()); del os.environ["CRBNN_CACHE_DIR"]
    '/tmp/x'
    """
    env = os.environ.get("CRBNN_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "crbnn"


def write_json(path: PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


# --------------------------------------------------------------------------------------- NIfTI


def write_nifti(
    path: PathLike,
    data: NDArray[Any],
    affine: NDArray[np.float64] | None = None,
    dtype: Any = None,
) -> None:
    """Write ``data`` as NIfTI-1 (``.nii`` or ``.nii.gz``) atomically, keeping dtype and affine.

    ``affine`` is the 4x4 voxel-to-world matrix in mm (identity if None).  ``dtype`` casts the
    data first (default: keep ``data.dtype``).

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "a.nii.gz")
    ...     write_nifti(p, np.ones((2, 3, 1), np.float32), np.diag([2.0, 2.0, 5.0, 1.0]))
    ...     img, aff = read_nifti(p)
    ...     img.dtype, img.shape, float(aff[2, 2])
    (dtype('float32'), (2, 3, 1), 5.0)
    """
    import nibabel as nib

    arr = np.asarray(data) if dtype is None else np.asarray(data, dtype=dtype)
    aff = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)
    img = nib.Nifti1Image(arr, aff)
    img.header.set_data_dtype(arr.dtype)
    img.header.set_xyzt_units("mm", "sec")
    with atomic_write(path) as tmp:
        nib.save(img, str(tmp))


def read_nifti(path: PathLike) -> tuple[NDArray[Any], NDArray[np.float64]]:
    """Read a NIfTI image; return ``(data in its stored dtype, 4x4 affine)``."""
    import nibabel as nib

    img = nib.load(str(path))
    data = np.asarray(img.dataobj)
    native = np.dtype(data.dtype.name)  # plain native dtype (nibabel returns e.g. '<f4')
    data = data.view(native) if data.dtype.isnative else data.astype(native)
    return data, np.asarray(img.affine, dtype=np.float64)


# ---------------------------------------------------------------------------------------- HDF5


def _attr_value(value: Any) -> Any:
    """Convert a Python value into something h5py stores as an attribute (lists/dicts -> JSON)."""
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return np.array(value, dtype=h5_str_dtype())
    return value


def h5_str_dtype() -> Any:
    """Variable-length UTF-8 string dtype for h5py."""
    import h5py

    return h5py.string_dtype("utf-8")


def decode_attr(value: Any) -> Any:
    """Turn an attribute read by h5py back into plain Python (bytes -> str, arrays -> lists)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OSU":
            return [v.decode() if isinstance(v, bytes) else str(v) for v in value.tolist()]
        return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_h5(
    path: PathLike,
    datasets: Mapping[str, NDArray[Any]],
    attrs: Mapping[str, Any] | None = None,
    dataset_attrs: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Write named arrays (and root / per-dataset attributes) to an HDF5 file atomically.

    Lists of strings become string-array attributes; dicts become JSON strings.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "x.h5")
    ...     write_h5(p, {"a": np.arange(3.0)}, {"names": ["x", "y"], "tr": 0.0035},
    ...              {"a": {"units": "s"}})
    ...     data, attrs, dattrs = read_h5(p)
    ...     data["a"].tolist(), attrs["names"], attrs["tr"], dattrs["a"]["units"]
    ([0.0, 1.0, 2.0], ['x', 'y'], 0.0035, 's')
    """
    import h5py

    with atomic_write(path) as tmp, h5py.File(tmp, "w") as f:
        for key, value in (attrs or {}).items():
            f.attrs[key] = _attr_value(value)
        for name, arr in datasets.items():
            ds = f.create_dataset(name, data=np.asarray(arr))
            for key, value in (dataset_attrs or {}).get(name, {}).items():
                ds.attrs[key] = _attr_value(value)


def read_h5(
    path: PathLike, names: list[str] | None = None
) -> tuple[dict[str, NDArray[Any]], dict[str, Any], dict[str, dict[str, Any]]]:
    """Read datasets (all, or ``names``) plus root and per-dataset attributes of an HDF5 file."""
    import h5py

    with h5py.File(path, "r") as f:
        keys = list(f.keys()) if names is None else names
        missing = [k for k in keys if k not in f]
        if missing:
            raise KeyError(f"{path}: missing dataset(s) {missing}; present: {sorted(f.keys())}")
        data = {k: f[k][()] for k in keys}
        attrs = {k: decode_attr(v) for k, v in f.attrs.items()}
        dattrs = {k: {a: decode_attr(v) for a, v in f[k].attrs.items()} for k in keys}
    return data, attrs, dattrs


# ------------------------------------------------------------------------- damaged intermediates


class DamagedFileError(OSError):
    """An intermediate file of the workflow that cannot be read (truncated, not HDF5/NetCDF, missing).

    The message names the file, the cause and the command that rebuilds it.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "damaged file"


def rebuild_hint(path: PathLike) -> str:
    """The command that rebuilds a workflow output (Snakemake reruns the job that writes it).

    >>> rebuild_hint("results/simulate_dataset/train.h5")
    'rebuild it with `snakemake --cores all --forcerun results/simulate_dataset/train.h5` (or delete it and rerun)'
    """
    return f"rebuild it with `snakemake --cores all --forcerun {path}` (or delete it and rerun)"


def damaged(path: PathLike, error: BaseException, hint: str | None = None) -> DamagedFileError:
    """A :class:`DamagedFileError` for ``path`` with the first line of ``error`` as its cause."""
    cause = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    what = "missing" if isinstance(error, FileNotFoundError) else "damaged or unreadable"
    return DamagedFileError(f"{path}: {what} ({cause}); {hint or rebuild_hint(path)}")


@contextlib.contextmanager
def reading_intermediate(path: PathLike, hint: str | None = None) -> Iterator[None]:
    """Turn a read failure (OSError, EOFError: truncated HDF5/NetCDF, not a file of that format) inside
    the block into a :class:`DamagedFileError` naming ``path`` and ``hint`` (default
    :func:`rebuild_hint`).  For blocks that only read ``path``."""
    try:
        yield
    except DamagedFileError:
        raise
    except (OSError, EOFError) as e:
        raise damaged(path, e, hint) from None


@contextlib.contextmanager
def open_intermediate(path: PathLike, hint: str | None = None, netcdf: bool = False) -> Iterator[Any]:
    """Open an intermediate for reading: an ``h5py.File`` (HDF5) or, with ``netcdf``, an
    ``xarray.Dataset`` (engine h5netcdf).  A missing, truncated or foreign file raises
    :class:`DamagedFileError` naming it and the command that rebuilds it (``hint``, default
    :func:`rebuild_hint`); so does a read error inside the block.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "train.h5")
    ...     _ = open(p, "wb").write(b"\\x89HDF\\r\\n")  # a truncated file
    ...     with open_intermediate(p, hint="rerun merge_shards") as f:
    ...         pass
    Traceback (most recent call last):
    ...
    crbnn.common.io.DamagedFileError: ...train.h5: damaged or unreadable (...); rerun merge_shards
    """
    with reading_intermediate(path, hint):
        if not Path(path).is_file():
            raise FileNotFoundError(f"no such file {path}")
        if netcdf:
            import xarray as xr

            try:
                handle = xr.open_dataset(path, engine="h5netcdf")
            except ValueError as e:  # xarray: "did not find a match in any of xarray's currently installed IO backends"
                raise OSError(str(e)) from None
        else:
            import h5py

            handle = h5py.File(path, "r")
        with handle:
            yield handle

