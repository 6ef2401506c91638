"""Pulse trains: the public control file, the plain format and clear errors for bad trains."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from crbnn.data.sequence import Sequence, SequenceError, check_basis_length, load_sequence, save_sequence

CONTROL = "control_MT_v3p2_TR3p5ms_discretized.mat"


def test_public_control_file(data_dir: Path) -> None:
    seq = load_sequence(data_dir / CONTROL, tr=3.5e-3)
    assert len(seq) == 1142 and seq.alpha.dtype == np.float64 and seq.trf.dtype == np.float64
    assert seq.alpha[0] == pytest.approx(np.pi) and seq.trf[0] == pytest.approx(5e-4)
    assert seq.tr == 3.5e-3
    expected = __import__("hashlib").sha256(seq.alpha.tobytes() + seq.trf.tobytes() + np.float64(3.5e-3).tobytes())
    assert seq.sha256 == expected.hexdigest()


def test_control_file_needs_tr(data_dir: Path) -> None:
    with pytest.raises(SequenceError, match=r"TR is required"):
        load_sequence(data_dir / CONTROL)


def test_plain_and_h5_round_trip(tmp_path: Path) -> None:
    seq = Sequence(np.array([np.pi, 0.3, 1e-3]), np.array([5e-4, 2.5e-4, 1e-4]), 3.5e-3)
    for name in ("train.csv", "train.h5"):
        save_sequence(seq, tmp_path / name)
        back = load_sequence(tmp_path / name)
        np.testing.assert_array_equal(back.alpha, seq.alpha)
        np.testing.assert_array_equal(back.trf, seq.trf)
        assert back.tr == seq.tr and back.sha256 == seq.sha256
    assert load_sequence(tmp_path / "train.csv", tr=3.5e-3).tr == 3.5e-3  # an explicit TR that agrees
    for name in ("train.csv", "train.h5"):  # an explicit TR never overrides the file's silently
        with pytest.raises(SequenceError, match=r"states TR = 0.0035 s but the config gives sequence.tr = 0.004 s"):
            load_sequence(tmp_path / name, tr=4e-3)


@pytest.mark.parametrize(
    ("line", "tr"),
    [("# tr = 4.5 ms", 4.5e-3), ("# tr=4.5ms", 4.5e-3), ("#TR: 0.0045", 4.5e-3), ("# tr = 0.0045 s", 4.5e-3),
     ("  # Tr = 4.5E-3  ", 4.5e-3)],
)
def test_plain_tr_units(tmp_path: Path, line: str, tr: float) -> None:
    p = tmp_path / "t.csv"
    p.write_text(f"{line}\nalpha_rad,trf_s\n1.0,0.0003\n")
    assert load_sequence(p).tr == pytest.approx(tr, rel=1e-12)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("# tr = 4.5 us\n", r"t\.csv:1: cannot read TR from '# tr = 4.5 us'"),
        ("# tr = fast\n", r"t\.csv:1: cannot read TR"),
        ("# tr = 3.5\n", r"t\.csv:1: TR 3.5 without a unit means 3.5 s"),
        ("# tr = 3.5 ms\n# tr = 3.5 ms\n", r"t\.csv:2: a second TR line"),
        ("# my train\n", r"t\.csv: TR is required \(the file has no '# tr"),
    ],
)
def test_plain_tr_errors(tmp_path: Path, header: str, message: str) -> None:
    p = tmp_path / "t.csv"
    p.write_text(header + "alpha_rad,trf_s\n1.0,0.0003\n")
    with pytest.raises(SequenceError, match=message):
        load_sequence(p)


def test_plain_without_tr_takes_an_explicit_tr(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("alpha_rad,trf_s\n1.0,0.0003\n")
    assert load_sequence(p, tr=4e-3).tr == 4e-3


def _plain(tmp_path: Path, body: str, header: str = "# tr = 0.0035\nalpha_rad,trf_s\n") -> Path:
    p = tmp_path / "bad.csv"
    p.write_text(header + body)
    return p


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("1.0,nan\n", r"bad\.csv: TRF has NaN or inf at pulse\(s\) \[1\]"),
        ("1.0,0.0003\ninf,0.0003\n", r"alpha has NaN or inf at pulse\(s\) \[2\]"),
        ("1.0,0.0003\n1.0,-0.0001\n", r"bad\.csv: TRF must be > 0 s; pulse\(s\) \[2\]"),
        ("-1.0,0.0003\n", r"flip angles must be >= 0"),
        ("1.0,0.004\n", r"TR = 0.0035 s is shorter than pulse"),
        ("", r"empty pulse train"),
        ("1.0\n", r"expected two columns"),
    ],
)
def test_bad_plain_trains(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(SequenceError, match=message):
        load_sequence(_plain(tmp_path, body))


def test_length_mismatch_in_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.h5"
    with h5py.File(p, "w") as f:
        f["alpha"] = np.ones(3)
        f["trf"] = np.full(2, 3e-4)
        f.attrs["tr"] = 3.5e-3
    with pytest.raises(SequenceError, match=r"bad\.h5: alpha has 3 pulses but TRF has 2"):
        load_sequence(p)


def test_length_mismatch_with_basis() -> None:
    seq = Sequence(np.ones(4), np.full(4, 3e-4), 3.5e-3, source="mine.csv")
    with pytest.raises(SequenceError, match=r"mine\.csv has 4 pulses but basis b\.h5 has 5 rows"):
        check_basis_length(seq, np.zeros((5, 2)), "b.h5")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SequenceError, match="not found"):
        load_sequence(tmp_path / "nope.csv")
