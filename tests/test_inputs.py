"""Public inputs: verified local copies; a checksum mismatch or a missing file leaves nothing behind."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from crbnn.basis import load_basis
from crbnn.inputs import INPUTS, InputError, fetch_input

NAME = "basis_for_compress.mat"


def test_pins_are_complete() -> None:
    for item in INPUTS.values():
        assert len(item.commit) == 40 and len(item.sha256) == 64
        assert item.url.startswith("https://raw.githubusercontent.com/") and item.commit in item.url


def test_local_copy_ok(tmp_path: Path, data_dir: Path) -> None:
    dest = tmp_path / "out" / NAME
    fetch_input(NAME, dest, data_dir=data_dir)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == INPUTS[NAME].sha256
    assert sorted(p.name for p in dest.parent.iterdir()) == [NAME]  # no temporary files left


def test_checksum_mismatch_leaves_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / NAME).write_bytes(b"not the basis")
    out = tmp_path / "out"
    with pytest.raises(InputError) as err:
        fetch_input(NAME, out / NAME, data_dir=src)
    msg = str(err.value)
    assert NAME in msg and INPUTS[NAME].sha256 in msg and hashlib.sha256(b"not the basis").hexdigest() in msg
    assert not any(out.iterdir())


def test_missing_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=rf"{NAME} not found in data_dir"):
        fetch_input(NAME, tmp_path / "out" / NAME, data_dir=tmp_path)
    assert not (tmp_path / "out" / NAME).exists()


def test_public_basis(data_dir: Path) -> None:
    b = load_basis(data_dir / NAME, rank=13)
    assert b.u.shape == (1142, 13) and b.u.dtype == np.complex128
    np.testing.assert_allclose(b.u.conj().T @ b.u, np.eye(13), atol=1e-10)
    assert b.sha256 == hashlib.sha256(np.ascontiguousarray(b.u).tobytes()).hexdigest()
