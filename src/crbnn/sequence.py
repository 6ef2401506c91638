"""Pulse trains: loading, validating and saving (alpha in rad, TRF in s, TR in s).

Three formats are read by :func:`load_sequence`, chosen by the file's extension:

* ``.mat``: the public MATLAB v7.3 control file (HDF5; datasets ``alpha`` and ``TRF``).  It does
  not store TR, so ``tr`` must be given.
* ``.h5`` / ``.hdf5``: the project format written by :func:`save_sequence` (datasets ``alpha`` and
  ``trf``, attribute ``tr``).
* ``.csv`` / ``.txt``: the plain format for users' own trains: a header line ``# tr = 0.0035``
  (seconds), optional further ``#`` comment lines, then one pulse per line, two comma-separated
  columns ``alpha_rad,trf_s`` (a first line with exactly these column names is allowed)::

      # tr = 0.0035
      alpha_rad,trf_s
      3.141592653589793,0.0005
      0.5,0.0003

  Pulse 1 is the crushed inversion pulse of the physics model, as in the public train.

A ``tr`` given to :func:`load_sequence` overrides the TR stored in an h5/plain file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from crbnn.io import PathLike, atomic_write, read_h5, sha256_arrays, write_h5


class SequenceError(ValueError):
    """An invalid pulse train (the message names the file and what is wrong)."""


@dataclass(frozen=True)
class Sequence:
    """A pulse train: flip angles ``alpha`` (rad), durations ``trf`` (s), repetition time ``tr`` (s).

    >>> seq = Sequence(np.array([np.pi, 0.5]), np.array([5e-4, 3e-4]), 3.5e-3)
    >>> len(seq), seq.sha256[:8]
    (2, '...')
    """

    alpha: NDArray[np.float64]
    trf: NDArray[np.float64]
    tr: float
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        alpha = np.ascontiguousarray(self.alpha, dtype=np.float64).reshape(-1)
        trf = np.ascontiguousarray(self.trf, dtype=np.float64).reshape(-1)
        object.__setattr__(self, "alpha", alpha)
        object.__setattr__(self, "trf", trf)
        object.__setattr__(self, "tr", float(self.tr))
        validate_sequence(alpha, trf, self.tr, self.source or "<array>")

    def __len__(self) -> int:
        return int(self.alpha.shape[0])

    @property
    def sha256(self) -> str:
        """Content hash: sha256 of the float64 bytes of alpha, trf and tr (independent of format)."""
        return sha256_arrays(self.alpha, self.trf, np.float64(self.tr))


def validate_sequence(alpha: NDArray[np.float64], trf: NDArray[np.float64], tr: float, source: str) -> None:
    """Raise :class:`SequenceError` naming ``source`` if the train is not physically valid.

    >>> validate_sequence(np.array([1.0]), np.array([-1e-4]), 3.5e-3, "x.csv")
    Traceback (most recent call last):
    ...
    crbnn.sequence.SequenceError: x.csv: TRF must be > 0 s; pulse(s) [1] have TRF [-0.0001]
    """
    if alpha.size == 0:
        raise SequenceError(f"{source}: empty pulse train (no pulses)")
    if alpha.shape != trf.shape:
        raise SequenceError(
            f"{source}: alpha has {alpha.size} pulses but TRF has {trf.size}; they must have the same length"
        )
    for name, arr in (("alpha", alpha), ("TRF", trf)):
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise SequenceError(f"{source}: {name} has NaN or inf at pulse(s) {(bad[:10] + 1).tolist()} (1-based)")
    if not np.isfinite(tr) or tr <= 0:
        raise SequenceError(f"{source}: TR must be a finite number > 0 s, got {tr}")
    bad = np.flatnonzero(trf <= 0)
    if bad.size:
        raise SequenceError(f"{source}: TRF must be > 0 s; pulse(s) {(bad[:10] + 1).tolist()} have TRF {trf[bad[:10]].tolist()}")
    bad = np.flatnonzero(alpha < 0)
    if bad.size:
        raise SequenceError(
            f"{source}: flip angles must be >= 0 rad; pulse(s) {(bad[:10] + 1).tolist()} have alpha {alpha[bad[:10]].tolist()}"
        )
    bad = np.flatnonzero(trf > tr)
    if bad.size:
        raise SequenceError(
            f"{source}: TR = {tr} s is shorter than pulse(s) {(bad[:10] + 1).tolist()} "
            f"with TRF {trf[bad[:10]].tolist()} s"
        )


def _read_plain(path: Path) -> tuple[NDArray[np.float64], NDArray[np.float64], float | None]:
    tr: float | None = None
    rows: list[tuple[float, float]] = []
    for lineno, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            m = re.fullmatch(r"#\s*tr\s*[=:]\s*(\S+)\s*(s)?\s*", line, flags=re.IGNORECASE)
            if m:
                try:
                    tr = float(m.group(1))
                except ValueError:
                    raise SequenceError(f"{path}:{lineno}: cannot read TR from {raw!r}") from None
            continue
        cells = [c.strip() for c in line.split(",")]
        if [c.lower() for c in cells] == ["alpha_rad", "trf_s"]:
            continue
        if len(cells) != 2:
            raise SequenceError(f"{path}:{lineno}: expected two columns 'alpha_rad,trf_s', got {raw!r}")
        try:
            rows.append((float(cells[0]), float(cells[1])))
        except ValueError:
            raise SequenceError(f"{path}:{lineno}: not a number in {raw!r}") from None
    arr = np.array(rows, dtype=np.float64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1], tr


def load_sequence(path: PathLike, tr: float | None = None, tr_if_missing: float | None = None) -> Sequence:
    """Read a pulse train from ``path`` (format by extension, see the module docstring).

    ``tr`` (s) is required for the MATLAB control file and overrides the TR of the other formats.
    ``tr_if_missing`` (s) is used only when neither ``tr`` nor the file gives a TR (the workflow
    passes the config's ``sequence.tr`` this way, so a plain file's own header wins).

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "train.csv")
    ...     _ = open(p, "w").write("# tr = 0.0035\\nalpha_rad,trf_s\\n3.14159,0.0005\\n0.5,0.0003\\n")
    ...     seq = load_sequence(p)
    ...     len(seq), seq.tr, seq.trf.tolist()
    (2, 0.0035, [0.0005, 0.0003])
    """
    p = Path(path)
    if not p.is_file():
        raise SequenceError(f"{p}: pulse-train file not found")
    ext = p.suffix.lower()
    stored_tr: float | None
    if ext == ".mat":
        import h5py

        try:
            with h5py.File(p, "r") as f:
                missing = [k for k in ("alpha", "TRF") if k not in f]
                if missing:
                    raise SequenceError(f"{p}: MATLAB control file lacks dataset(s) {missing}")
                alpha, trf = f["alpha"][()], f["TRF"][()]
        except OSError as e:
            raise SequenceError(f"{p}: not a MATLAB v7.3 (HDF5) control file: {e}") from e
        stored_tr = None
    elif ext in (".h5", ".hdf5"):
        data, attrs, _ = read_h5(p, ["alpha", "trf"])
        alpha, trf = data["alpha"], data["trf"]
        stored_tr = attrs.get("tr")
    elif ext in (".csv", ".txt"):
        alpha, trf, stored_tr = _read_plain(p)
    else:
        raise SequenceError(f"{p}: unknown pulse-train format {ext!r}; use .mat, .h5 or .csv/.txt")
    use_tr = tr if tr is not None else stored_tr if stored_tr is not None else tr_if_missing
    if use_tr is None:
        hint = "the MATLAB control file does not store TR" if ext == ".mat" else "no '# tr = ...' header"
        raise SequenceError(f"{p}: TR is required ({hint}); pass tr= (config sequence.tr, in s)")
    return Sequence(np.asarray(alpha), np.asarray(trf), float(use_tr), source=str(p))


def save_sequence(seq: Sequence, path: PathLike, source: str | None = None) -> None:
    """Write ``seq`` to ``path``: project HDF5 for ``.h5``/``.hdf5``, the plain format for ``.csv``/``.txt``.

    The HDF5 file holds datasets ``alpha`` [N] (rad), ``trf`` [N] (s) and attributes ``tr`` (s),
    ``sha256`` (content hash) and ``source``.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext in (".h5", ".hdf5"):
        write_h5(
            p,
            {"alpha": seq.alpha, "trf": seq.trf},
            {"tr": seq.tr, "sha256": seq.sha256, "source": source if source is not None else seq.source},
            {"alpha": {"units": "rad"}, "trf": {"units": "s"}},
        )
    elif ext in (".csv", ".txt"):
        with atomic_write(p) as tmp:
            lines = [f"# tr = {seq.tr!r}", "alpha_rad,trf_s"]
            lines += [f"{a!r},{t!r}" for a, t in zip(seq.alpha.tolist(), seq.trf.tolist(), strict=True)]
            tmp.write_text("\n".join(lines) + "\n")
    else:
        raise SequenceError(f"{p}: cannot save a pulse train as {ext!r}; use .h5 or .csv")


def check_basis_length(seq: Sequence, basis_u: ArrayLike, basis_source: str = "<basis>") -> None:
    """Raise :class:`SequenceError` if the basis rows do not match the number of pulses.

    >>> seq = Sequence(np.array([np.pi, 0.5]), np.array([5e-4, 3e-4]), 3.5e-3, source="t.csv")
    >>> check_basis_length(seq, np.zeros((3, 1)), "b.h5")
    Traceback (most recent call last):
    ...
    crbnn.sequence.SequenceError: pulse train t.csv has 2 pulses but basis b.h5 has 3 rows; ...
    """
    n_rows = np.shape(basis_u)[0]
    if n_rows != len(seq):
        raise SequenceError(
            f"pulse train {seq.source or '<array>'} has {len(seq)} pulses but basis {basis_source} has {n_rows} rows; "
            "a basis belongs to one pulse train (set basis.source: computed to compute one for this train)"
        )
