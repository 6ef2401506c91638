"""Parameter tables and simulated data-set files (HDF5), layout of docs/architecture.md.

Parameter table (``results/sample_parameters/<name>.h5``): dataset ``parameters`` [n, 7] float64
(columns ``TISSUE_PARAMETERS``, attrs ``names``, ``units``); root attrs ``seed`` and, for grids,
``axes`` (JSON).

Simulated data set (``results/simulate_dataset/<name>.h5`` and its shards), all at M0 = 1, sigma = 1:
``parameters`` [n, 7], ``coefficients`` [n, R] complex128, ``jacobian`` [n, R, P] complex128 (attr
``names``), ``crb`` [n, E] float64 (attrs ``names``, ``units``); root attrs ``sequence_sha256``,
``basis_sha256``, ``rank``, ``estimated``, ``nuisance``, ``M0``, ``sigma``, ``parametrization``,
``crbnn_version``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from crbnn.common.io import PathLike, atomic_write, decode_attr, open_intermediate, read_h5, reading_intermediate, write_h5
from crbnn.common.parameters import TISSUE_PARAMETERS, UNITS, units_of

DATASET_KEYS = ("parameters", "coefficients", "jacobian", "crb")


class DatasetError(ValueError):
    """A data-set file that does not have the documented layout or does not match another."""


def write_parameter_table(
    path: PathLike, parameters: NDArray[np.float64], seed: int, axes: Mapping[str, Any] | None = None
) -> None:
    """Write a parameter table [n, 7] (columns ``TISSUE_PARAMETERS``) atomically."""
    p = np.asarray(parameters, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(TISSUE_PARAMETERS):
        raise DatasetError(f"{path}: parameter table must be [n, {len(TISSUE_PARAMETERS)}], got {p.shape}")
    attrs: dict[str, Any] = {"seed": int(seed)}
    if axes is not None:
        attrs["axes"] = json.dumps(axes, sort_keys=True)
    write_h5(
        path,
        {"parameters": p},
        attrs,
        {"parameters": {"names": list(TISSUE_PARAMETERS), "units": list(units_of(TISSUE_PARAMETERS))}},
    )


def read_parameter_table(path: PathLike) -> tuple[NDArray[np.float64], dict[str, Any]]:
    """Read a parameter table; return ``(parameters [n, 7], root attrs)`` and check the columns."""
    with reading_intermediate(path):  # a truncated table names itself and its rebuild command
        data, attrs, dattrs = read_h5(path, ["parameters"])
    names = dattrs["parameters"].get("names")
    if names is not None and list(names) != list(TISSUE_PARAMETERS):
        raise DatasetError(f"{path}: columns {names} differ from {list(TISSUE_PARAMETERS)}")
    return np.asarray(data["parameters"], dtype=np.float64), attrs


def shard_rows(n: int, n_shards: int, index: int) -> slice:
    """Rows of shard ``index`` (0-based) when ``n`` rows are split into ``n_shards`` near-equal parts.

    >>> [shard_rows(10, 3, i) for i in range(3)]
    [slice(0, 3, None), slice(3, 6, None), slice(6, 10, None)]
    """
    if not 0 <= index < n_shards:
        raise DatasetError(f"shard index {index} outside [0, {n_shards})")
    return slice(index * n // n_shards, (index + 1) * n // n_shards)


def write_dataset(
    path: PathLike,
    parameters: NDArray[np.float64],
    coefficients: NDArray[np.complex128],
    jacobian: NDArray[np.complex128],
    crb: NDArray[np.float64],
    *,
    jacobian_names: Sequence[str],
    estimated: Sequence[str],
    nuisance: Sequence[str],
    sequence_sha256: str,
    basis_sha256: str,
    extra_attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write a simulated data set (or shard) with the documented layout, atomically.

    >>> import tempfile, os
    >>> n, r = 2, 3
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "s.h5")
    ...     write_dataset(p, np.zeros((n, 7)), np.zeros((n, r), complex), np.zeros((n, r, 2), complex),
    ...                   np.ones((n, 1)), jacobian_names=["m0s", "B1"], estimated=["m0s"],
    ...                   nuisance=["B1"], sequence_sha256="a", basis_sha256="b")
    ...     data, attrs = read_dataset(p)
    ...     data["jacobian"].shape, attrs["rank"], attrs["estimated"], attrs["crb_names"]
    ((2, 3, 2), 3, ['m0s'], ['m0s'])
    """
    params = np.asarray(parameters, dtype=np.float64)
    coef = np.asarray(coefficients, dtype=np.complex128)
    jac = np.asarray(jacobian, dtype=np.complex128)
    crb_ = np.asarray(crb, dtype=np.float64)
    n = params.shape[0]
    shapes_ok = (
        params.shape == (n, len(TISSUE_PARAMETERS))
        and coef.ndim == 2
        and coef.shape[0] == n
        and jac.shape == (n, coef.shape[1], len(jacobian_names))
        and crb_.shape == (n, len(estimated))
    )
    if not shapes_ok:
        raise DatasetError(
            f"{path}: inconsistent shapes parameters {params.shape}, coefficients {coef.shape}, "
            f"jacobian {jac.shape} (names {list(jacobian_names)}), crb {crb_.shape} (estimated {list(estimated)})"
        )
    from crbnn import __version__

    attrs: dict[str, Any] = {
        "sequence_sha256": sequence_sha256,
        "basis_sha256": basis_sha256,
        "rank": int(coef.shape[1]),
        "estimated": list(estimated),
        "nuisance": list(nuisance),
        "M0": 1.0,
        "sigma": 1.0,
        "parametrization": "paper",
        "crbnn_version": __version__,
        **(extra_attrs or {}),
    }
    write_h5(
        path,
        {"parameters": params, "coefficients": coef, "jacobian": jac, "crb": crb_},
        attrs,
        {
            "parameters": {"names": list(TISSUE_PARAMETERS), "units": list(units_of(TISSUE_PARAMETERS))},
            "jacobian": {"names": list(jacobian_names)},
            "crb": {"names": list(estimated), "units": [f"({UNITS.get(e, '?')})^2" for e in estimated]},
        },
    )


def read_dataset(path: PathLike, keys: Sequence[str] = DATASET_KEYS) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    """Read a data set: ``(arrays, attrs)``.  ``attrs`` holds the root attributes plus
    ``parameter_names``, ``jacobian_names`` and ``crb_names`` from the dataset attributes.
    A truncated or foreign file raises :class:`crbnn.common.io.DamagedFileError` naming it and the
    command that rebuilds it."""
    with reading_intermediate(path):
        data, attrs, dattrs = read_h5(path, list(keys))
    if "parameters" in dattrs:
        attrs["parameter_names"] = dattrs["parameters"].get("names")
    if "jacobian" in dattrs:
        attrs["jacobian_names"] = dattrs["jacobian"].get("names")
    if "crb" in dattrs:
        attrs["crb_names"] = dattrs["crb"].get("names")
    return data, attrs


_MUST_AGREE = ("sequence_sha256", "basis_sha256", "rank", "estimated", "nuisance", "M0", "sigma", "parametrization")


def merge_datasets(paths: Sequence[PathLike], out: PathLike) -> None:
    """Concatenate shards (rows in the order of ``paths``) into ``out`` atomically.

    The shards must agree on the hashes, rank, parameter lists and names; otherwise a
    :class:`DatasetError` names the first disagreeing file and attribute.
    """
    import h5py

    if not paths:
        raise DatasetError(f"{out}: no shards to merge")
    with open_intermediate(paths[0]) as f0:
        ref_attrs = {k: decode_attr(v) for k, v in f0.attrs.items()}
        ds_attrs = {k: {a: decode_attr(v) for a, v in f0[k].attrs.items()} for k in DATASET_KEYS}
        shapes = {k: f0[k].shape[1:] for k in DATASET_KEYS}
        dtypes = {k: f0[k].dtype for k in DATASET_KEYS}
    n_rows = []
    for p in paths:
        with open_intermediate(p) as f:
            for key in _MUST_AGREE:
                a, b = decode_attr(f.attrs.get(key)), ref_attrs.get(key)
                if (a != b) if not isinstance(a, np.ndarray) else not np.array_equal(a, b):
                    raise DatasetError(f"cannot merge {p}: attribute {key} = {a!r} differs from {paths[0]}: {b!r}")
            for k in DATASET_KEYS:
                if f[k].shape[1:] != shapes[k]:
                    raise DatasetError(f"cannot merge {p}: {k} shape {f[k].shape} vs {shapes[k]} in {paths[0]}")
            n_rows.append(f["parameters"].shape[0])
    total = int(sum(n_rows))
    with atomic_write(out) as tmp, h5py.File(tmp, "w") as g:
        for key, value in ref_attrs.items():
            g.attrs[key] = value if not isinstance(value, list) else np.array(value, dtype=h5py.string_dtype())
        for k in DATASET_KEYS:
            ds = g.create_dataset(k, shape=(total, *shapes[k]), dtype=dtypes[k])
            for a, v in ds_attrs[k].items():
                ds.attrs[a] = v if not isinstance(v, list) else np.array(v, dtype=h5py.string_dtype())
        start = 0
        for p, n in zip(paths, n_rows, strict=True):
            with h5py.File(p, "r") as f:
                for k in DATASET_KEYS:
                    g[k][start : start + n] = f[k][()]
            start += n
