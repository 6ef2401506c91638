"""Temporal subspace bases: load (public .mat or project HDF5), compute from a dictionary, compress.

A basis ``u`` is an [N, R] complex128 matrix with orthonormal columns (N pulses, rank R); the
subspace coefficients of a signal ``s`` [..., N] are ``c = u^H s`` (:func:`compress`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from crbnn.common.io import PathLike, read_h5, sha256_arrays, write_h5

if TYPE_CHECKING:
    import torch


class BasisError(ValueError):
    """An invalid or unreadable basis (the message names the file)."""


#: Largest entry of |U^H U - I| accepted for a basis read from a file (orthonormal columns; float32
#: storage rounds at ~1e-7; a duplicated or unnormalized column is off by O(1)).
ORTHONORMAL_TOL = 1e-4


def check_orthonormal(u: NDArray[Any], source: str = "<array>", tol: float = ORTHONORMAL_TOL) -> None:
    """Raise :class:`BasisError` unless the columns of ``u`` are orthonormal: max |U^H U - I| <= ``tol``.

    The CRBs and the compressed signals assume it (``c = u^H s`` keeps the noise white).

    >>> check_orthonormal(np.eye(3, 2))
    >>> check_orthonormal(np.ones((3, 2)) / np.sqrt(3), "b.h5")
    Traceback (most recent call last):
    ...
    crbnn.data.basis.BasisError: b.h5: the basis columns are not orthonormal (max |U^H U - I| = 1 at column pair (0, 1), tolerance 0.0001); a basis must have orthonormal columns (e.g. the left singular vectors of a dictionary)
    """
    uu = np.asarray(u, dtype=np.complex128)
    dev = np.abs(uu.conj().T @ uu - np.eye(uu.shape[1]))
    worst = float(dev.max()) if dev.size else 0.0
    if not worst <= tol:
        i, j = np.unravel_index(int(np.argmax(dev)), dev.shape)
        raise BasisError(
            f"{source}: the basis columns are not orthonormal (max |U^H U - I| = {worst:.3g} at column pair "
            f"({min(i, j)}, {max(i, j)}), tolerance {tol:g}); a basis must have orthonormal columns "
            "(e.g. the left singular vectors of a dictionary)"
        )


@dataclass(frozen=True)
class Basis:
    """Orthonormal temporal basis ``u`` [N, R] (complex128).

    >>> b = Basis(np.eye(3, 2))
    >>> b.u.dtype, b.rank, b.n_pulses
    (dtype('complex128'), 2, 3)
    """

    u: NDArray[np.complex128]
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        u = np.ascontiguousarray(self.u, dtype=np.complex128)
        if u.ndim != 2 or u.shape[1] < 1 or u.shape[0] < u.shape[1]:
            raise BasisError(f"{self.source or '<array>'}: basis must be [N, R] with N >= R >= 1, got {u.shape}")
        if not np.all(np.isfinite(u)):
            raise BasisError(f"{self.source or '<array>'}: basis has NaN or inf entries")
        object.__setattr__(self, "u", u)

    @property
    def rank(self) -> int:
        """Number of columns R."""
        return int(self.u.shape[1])

    @property
    def n_pulses(self) -> int:
        """Number of rows N (pulses of the train it belongs to)."""
        return int(self.u.shape[0])

    @property
    def sha256(self) -> str:
        """Content hash: sha256 of the C-contiguous complex128 bytes of ``u``."""
        return sha256_arrays(np.ascontiguousarray(self.u, dtype=np.complex128))


def _truncate(u: NDArray[Any], rank: int | None, source: str) -> NDArray[np.complex128]:
    if rank is None:
        return np.asarray(u, dtype=np.complex128)
    if rank < 1 or rank > u.shape[1]:
        raise BasisError(f"{source}: rank {rank} requested but the basis has {u.shape[1]} columns")
    return np.asarray(u[:, :rank], dtype=np.complex128)


def load_basis(path: PathLike, rank: int | None = None) -> Basis:
    """Load a basis: the public MATLAB v5 file (variable ``u``) or the project HDF5 (dataset ``u``).

    ``rank`` keeps the first ``rank`` columns (all if None).  The columns kept must be orthonormal
    (:func:`check_orthonormal`); every reader of a basis file (the workflow's ``build_basis``,
    ``crbnn infer --basis``) goes through here.
    """
    p = Path(path)
    if not p.is_file():
        raise BasisError(f"{p}: basis file not found")
    ext = p.suffix.lower()
    if ext == ".mat":
        import scipy.io

        try:
            mat = scipy.io.loadmat(p, variable_names=["u"])
        except (ValueError, NotImplementedError, OSError) as e:
            raise BasisError(f"{p}: cannot read MATLAB file: {e}") from e
        if "u" not in mat:
            raise BasisError(f"{p}: MATLAB file has no variable 'u'")
        u = mat["u"]
    elif ext in (".h5", ".hdf5"):
        try:
            u = read_h5(p, ["u"])[0]["u"]
        except (OSError, KeyError) as e:
            raise BasisError(f"{p}: not a basis HDF5 file (dataset 'u' [N, R] expected): {str(e).strip(chr(34))}") from None
    else:
        raise BasisError(f"{p}: unknown basis format {ext!r}; use .mat or .h5")
    basis = Basis(_truncate(np.asarray(u), rank, str(p)), source=str(p))
    check_orthonormal(basis.u, str(p))
    return basis


def save_basis(basis: Basis, path: PathLike, source: str, sequence_sha256: str = "") -> None:
    """Write the project HDF5 basis: dataset ``u``; attrs ``sha256``, ``rank``, ``source``, ``sequence_sha256``.

    ``source`` is ``"public"`` or ``"computed"`` (architecture.md).
    """
    write_h5(
        path,
        {"u": basis.u},
        {"sha256": basis.sha256, "rank": basis.rank, "source": source, "sequence_sha256": sequence_sha256},
    )


def compute_basis(signals: ArrayLike, rank: int) -> Basis:
    """First ``rank`` left singular vectors of the dictionary ``D = signals^T`` ([N, n_signals]).

    ``signals`` is [n_signals, N] (complex or real).  Computed from the N x N Gram matrix
    ``D D^H`` (eigendecomposition, largest first), so memory does not grow with n_signals.  The
    phase of each column is fixed so that its largest-magnitude entry is real and positive
    (a deterministic convention; any unit phase spans the same subspace).

    >>> rng = np.random.default_rng(0)
    >>> sig = rng.normal(size=(50, 2)) @ rng.normal(size=(2, 8))   # rank-2 dictionary
    >>> b = compute_basis(sig, 2)
    >>> bool(np.allclose(b.u.conj().T @ b.u, np.eye(2)))
    True
    >>> bool(np.allclose(sig @ b.u.conj() @ b.u.T, sig))            # spans the signals
    True
    """
    s = np.asarray(signals)
    if s.ndim != 2:
        raise BasisError(f"signals must be [n_signals, N], got shape {s.shape}")
    if not 1 <= rank <= min(s.shape):
        raise BasisError(f"rank {rank} must be between 1 and min(n_signals, N) = {min(s.shape)}")
    d = s.T.astype(np.complex128)  # [N, n]
    gram = d @ d.conj().T
    w, v = np.linalg.eigh(gram)
    u = v[:, ::-1][:, :rank]
    idx = np.argmax(np.abs(u), axis=0)
    phase = u[idx, np.arange(rank)]
    u = u * (np.abs(phase) / phase)[None, :]
    return Basis(u, source="computed")


T = TypeVar("T")


def compress(signal: T, u: Any) -> T:
    """Subspace coefficients ``c = u^H s`` of signals ``s`` [..., N] -> [..., R].

    Works for numpy arrays and torch tensors (``u`` is converted to the signal's library).

    >>> u = np.eye(3, 2)
    >>> compress(np.array([1.0, 2.0, 3.0]), u)
    array([1.+0.j, 2.+0.j])
    >>> import torch
    >>> compress(torch.tensor([1.0, 2.0, 3.0], dtype=torch.complex128), u)
    tensor([1.+0.j, 2.+0.j], dtype=torch.complex128)
    """
    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None  # type: ignore[assignment]
    if torch is not None and isinstance(signal, torch.Tensor):
        ut = u if isinstance(u, torch.Tensor) else torch.as_tensor(np.asarray(u, dtype=np.complex128))
        ut = ut.to(device=signal.device, dtype=torch.complex128)
        return signal.to(torch.complex128) @ ut.conj()  # type: ignore[return-value]
    return np.asarray(signal) @ np.asarray(u, dtype=np.complex128).conj()  # type: ignore[return-value]


def compress_jacobian(jacobian: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """dc/dtheta = U^H ds/dtheta: [..., N, P] -> [..., R, P] (one GEMM over all signals and columns)."""
    lead, (n, p) = jacobian.shape[:-2], jacobian.shape[-2:]
    flat = jacobian.reshape(-1, n, p).permute(1, 0, 2).reshape(n, -1)
    out = u.conj().transpose(0, 1) @ flat  # [R, S P]
    return out.reshape(u.shape[1], -1, p).permute(1, 0, 2).reshape(*lead, u.shape[1], p)


def simulate_dictionary(
    sequence: Any,
    parameters: NDArray[np.float64],
    r2sl: Any = None,
    batch_size: int = 256,
    device: Any = "cpu",
) -> NDArray[np.complex128]:
    """Noise-free signals [n, N] (M0 = 1) of a parameter table [n, 7] (``TISSUE_PARAMETERS``).

    Uses ``crbnn.physics.signal.simulate_paper`` in batches of ``batch_size`` on ``device``.
    """
    import torch

    from crbnn.common.parameters import TISSUE_PARAMETERS
    from crbnn.physics.signal import simulate_paper

    alpha = torch.as_tensor(sequence.alpha, dtype=torch.float64, device=device)
    trf = torch.as_tensor(sequence.trf, dtype=torch.float64, device=device)
    out = np.empty((parameters.shape[0], len(sequence)), dtype=np.complex128)
    for start in range(0, parameters.shape[0], batch_size):
        rows = torch.as_tensor(parameters[start : start + batch_size], dtype=torch.float64, device=device)
        params: dict[str, Any] = {name: rows[:, j] for j, name in enumerate(TISSUE_PARAMETERS)}
        params["M0"] = complex(1.0, 0.0)
        signal, _ = simulate_paper(alpha, trf, sequence.tr, params, wrt=(), r2sl=r2sl)
        out[start : start + rows.shape[0]] = signal.detach().cpu().numpy()
    return out


def compute_basis_from_priors(
    sequence: Any,
    priors: Any,
    rank: int,
    n: int,
    seed: int,
    r2sl: Any = None,
    batch_size: int = 256,
    device: Any = "cpu",
) -> Basis:
    """Basis of rank ``rank`` from ``n`` signals of parameters drawn from ``priors`` (seeded)."""
    from crbnn.data.priors import sample_parameters

    if n < rank:
        raise BasisError(f"basis.dictionary_size = {n} must be >= basis.rank = {rank}")
    table = sample_parameters(priors, n, seed=seed, tr=sequence.tr)
    signals = simulate_dictionary(sequence, table, r2sl=r2sl, batch_size=batch_size, device=device)
    return compute_basis(signals, rank)
