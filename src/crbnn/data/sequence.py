"""Pulse trains: loading, validating and saving (alpha in rad, TRF in s, TR in s).

Three formats are read by :func:`load_sequence`, chosen by the file's extension:

* ``.mat``: the public MATLAB v7.3 control file (HDF5; datasets ``alpha`` and ``TRF``).  It does
  not store TR, so ``tr`` must be given.
* ``.h5`` / ``.hdf5``: the project format written by :func:`save_sequence` (datasets ``alpha`` and
  ``trf``, attribute ``tr``).
* ``.csv`` / ``.txt``: the plain format for users' own trains: one header line stating TR,
  ``# tr = <number> [s|ms]`` (seconds without a unit; spaces optional, ``=`` or ``:``), optional
  further ``#`` comment lines, then one pulse per line, two comma-separated columns
  ``alpha_rad,trf_s`` (a first line with exactly these column names is allowed)::

      # tr = 3.5 ms
      alpha_rad,trf_s
      3.141592653589793,0.0005
      0.5,0.0003

  A comment line that starts with the word ``tr`` but cannot be read, a second TR line, or a TR
  without a unit above 1 s is an error (never a comment).  Pulse 1 is the crushed inversion pulse of
  the physics model, as in the public train.

TR is never guessed: a ``tr`` given to :func:`load_sequence` (the config's explicit
``sequence.tr``) must agree with the TR stored in an h5/plain file, and a file that stores none
(the MATLAB control file, or a plain file without a TR line) needs one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from crbnn.common.io import PathLike, atomic_write, read_h5, sha256_arrays, write_h5


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
    crbnn.data.sequence.SequenceError: x.csv: TRF must be > 0 s; pulse(s) [1] have TRF [-0.0001]
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


#: TR of the public control file ``control_MT_v3p2_TR3p5ms_discretized.mat`` (it stores none; the
#: file name and the paper give 3.5 ms).
PUBLIC_TR = 3.5e-3

_TR_LINE = re.compile(r"#\s*tr\b(?P<rest>.*)", flags=re.IGNORECASE)
_TR_VALUE = re.compile(r"\s*[=:]\s*(?P<num>[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*(?P<unit>s|ms)?\s*", re.IGNORECASE)


def parse_tr_line(line: str, where: str = "<tr line>") -> float | None:
    """TR in s of a plain-format comment line, or None when the line is an ordinary comment.

    A comment starting with the word ``tr`` declares TR and must read ``# tr = <number> [s|ms]``.

    >>> parse_tr_line("# tr = 4.5 ms"), parse_tr_line("#TR: 0.0035"), parse_tr_line("# tr=3.5e-3 s")
    (0.0045, 0.0035, 0.0035)
    >>> parse_tr_line("# trains designed by me") is None
    True
    >>> parse_tr_line("# tr = 4.5 us", "t.csv:1")
    Traceback (most recent call last):
    ...
    crbnn.data.sequence.SequenceError: t.csv:1: cannot read TR from '# tr = 4.5 us'; expected '# tr = <number> [s|ms]', e.g. '# tr = 3.5 ms'
    """
    m = _TR_LINE.fullmatch(line.strip())
    if not m:
        return None
    v = _TR_VALUE.fullmatch(m.group("rest"))
    if not v:
        raise SequenceError(
            f"{where}: cannot read TR from {line.strip()!r}; expected '# tr = <number> [s|ms]', e.g. '# tr = 3.5 ms'"
        )
    value = float(v.group("num"))
    unit = (v.group("unit") or "").lower()
    if unit == "ms":
        return value / 1000.0
    if not unit and value > 1.0:
        raise SequenceError(
            f"{where}: TR {value} without a unit means {value} s (more than 1 s); write the unit, e.g. '# tr = {value} ms'"
        )
    return value


def _read_plain(path: Path) -> tuple[NDArray[np.float64], NDArray[np.float64], float | None]:
    tr: float | None = None
    tr_line = 0
    rows: list[tuple[float, float]] = []
    for lineno, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            value = parse_tr_line(line, f"{path}:{lineno}")
            if value is not None:
                if tr is not None:
                    raise SequenceError(f"{path}:{lineno}: a second TR line (the first is line {tr_line}); state TR once")
                tr, tr_line = value, lineno
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


def _read_any(p: Path) -> tuple[NDArray[np.float64], NDArray[np.float64], float | None]:
    if not p.is_file():
        raise SequenceError(f"{p}: pulse-train file not found")
    ext = p.suffix.lower()
    if ext == ".mat":
        import h5py

        try:
            with h5py.File(p, "r") as f:
                missing = [k for k in ("alpha", "TRF") if k not in f]
                if missing:
                    raise SequenceError(f"{p}: MATLAB control file lacks dataset(s) {missing}")
                return np.asarray(f["alpha"][()]), np.asarray(f["TRF"][()]), None
        except OSError as e:
            raise SequenceError(f"{p}: not a MATLAB v7.3 (HDF5) control file: {e}") from e
    if ext in (".h5", ".hdf5"):
        try:
            data, attrs, _ = read_h5(p, ["alpha", "trf"])
        except (OSError, KeyError) as e:
            raise SequenceError(f"{p}: not a pulse-train HDF5 file (datasets alpha, trf; attribute tr): {e}") from e
        tr = attrs.get("tr")
        return np.asarray(data["alpha"]), np.asarray(data["trf"]), None if tr is None else float(tr)
    if ext in (".csv", ".txt"):
        try:
            return _read_plain(p)
        except UnicodeDecodeError as e:
            raise SequenceError(f"{p}: not a text file ({e})") from None
    raise SequenceError(f"{p}: unknown pulse-train format {ext!r}; use .mat, .h5 or .csv/.txt")


def load_sequence(path: PathLike, tr: float | None = None) -> Sequence:
    """Read a pulse train from ``path`` (format by extension, see the module docstring).

    ``tr`` (s): TR given explicitly (the config's ``sequence.tr``).  Required for the MATLAB control
    file and for a plain file without a TR line; when the file states a TR, ``tr`` must agree with
    it (relative difference <= 1e-9), else :class:`SequenceError` names both values.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "train.csv")
    ...     _ = open(p, "w").write("# tr = 3.5 ms\\nalpha_rad,trf_s\\n3.14159,0.0005\\n0.5,0.0003\\n")
    ...     seq = load_sequence(p)
    ...     len(seq), seq.tr, seq.trf.tolist()
    (2, 0.0035, [0.0005, 0.0003])
    """
    p = Path(path)
    alpha, trf, in_file = _read_any(p)
    if in_file is not None and tr is not None and not np.isclose(float(tr), in_file, rtol=1e-9, atol=0.0):
        raise SequenceError(
            f"{p}: the file states TR = {in_file:g} s but the config gives sequence.tr = {float(tr):g} s; "
            "remove sequence.tr (null: use the file's TR) or make them agree"
        )
    use_tr = in_file if in_file is not None else tr
    if use_tr is None:
        hint = (
            "the MATLAB control file does not store TR"
            if p.suffix.lower() == ".mat"
            else "the file has no '# tr = <number> [s|ms]' line"
        )
        raise SequenceError(f"{p}: TR is required ({hint}); state it in the file or set sequence.tr (in s)")
    return Sequence(np.asarray(alpha), np.asarray(trf), float(use_tr), source=str(p))


def check_in_r2sl_grid(seq: Sequence, grid: Mapping[str, float], rtol: float = 1e-9) -> None:
    """Raise :class:`SequenceError` naming the file and pulses outside the R2sl grid ``grid``.

    The table (config ``r2sl``) covers TRF in [trf_min, trf_max] and nominal RF amplitudes
    alpha/TRF up to omega1_max (with T2s and B1 of the priors inside the grid, checked elsewhere).

    >>> seq = Sequence(np.array([np.pi, 3.0]), np.array([5e-4, 1e-4]), 3.5e-3, source="t.csv")
    >>> check_in_r2sl_grid(seq, {"trf_min": 1e-4, "trf_max": 5e-4, "omega1_max": np.pi / 5e-4})
    Traceback (most recent call last):
    ...
    crbnn.data.sequence.SequenceError: t.csv: pulse(s) [2] lie outside the R2sl grid: alpha/TRF [30000] rad/s above r2sl.omega1_max = 6283.19 rad/s (pulse 2: alpha 3 rad, TRF 0.0001 s); ...
    """
    lo, hi, w_max = float(grid["trf_min"]), float(grid["trf_max"]), float(grid["omega1_max"])
    w1 = seq.alpha / seq.trf
    src = seq.source or "<array>"
    for bad, what in (
        ((seq.trf < lo * (1 - rtol)) | (seq.trf > hi * (1 + rtol)),
         f"TRF {{vals}} s outside [r2sl.trf_min, r2sl.trf_max] = [{lo:g}, {hi:g}] s"),
        (w1 > w_max * (1 + rtol), f"alpha/TRF {{vals}} rad/s above r2sl.omega1_max = {w_max:g} rad/s"),
    ):
        idx = np.flatnonzero(bad)
        if idx.size:
            vals = seq.trf[idx[:5]] if what.startswith("TRF") else w1[idx[:5]]
            first = int(idx[0])
            raise SequenceError(
                f"{src}: pulse(s) {(idx[:10] + 1).tolist()} lie outside the R2sl grid: "
                + what.format(vals="[" + ", ".join(f"{v:.6g}" for v in vals) + "]")
                + f" (pulse {first + 1}: alpha {seq.alpha[first]:.6g} rad, TRF {seq.trf[first]:.6g} s); "
                "widen the r2sl grid or change the pulse train"
            )


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
    crbnn.data.sequence.SequenceError: pulse train t.csv has 2 pulses but basis b.h5 has 3 rows; ...
    """
    n_rows = np.shape(basis_u)[0]
    if n_rows != len(seq):
        raise SequenceError(
            f"pulse train {seq.source or '<array>'} has {len(seq)} pulses but basis {basis_source} has {n_rows} rows; "
            "a basis belongs to one pulse train (set basis.source: computed to compute one for this train)"
        )
