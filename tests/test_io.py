"""One atomic writer for the project (crbnn.common.io.atomic_write): permissions and no leftovers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from crbnn.common.io import atomic_write, cache_dir
from crbnn.learn.model_file import save_model
from crbnn.learn.nets import EstimatorNet
from crbnn.physics.r2sl import R2slTable


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture()
def umask_022():
    old = os.umask(0o022)
    try:
        yield 0o644
    finally:
        os.umask(old)


def test_atomic_write_success_has_umask_permissions(tmp_path: Path, umask_022: int) -> None:
    target = tmp_path / "d" / "x.txt"
    with atomic_write(target) as tmp:
        tmp.write_text("ok")
    assert target.read_text() == "ok" and _mode(target) == umask_022
    assert [p.name for p in target.parent.iterdir()] == ["x.txt"]


def test_atomic_write_failure_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "x.h5"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert not any(tmp_path.iterdir())
    # an existing file is left untouched
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target) as tmp:
            tmp.write_text("new")
            raise KeyboardInterrupt
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.h5"]


def test_model_file_is_not_private(tmp_path: Path, umask_022: int) -> None:
    """model.pt used to be written through mkstemp without chmod (mode 0600)."""
    net = EstimatorNet([4, 8, 2])
    net.meta = {"estimated": ["a", "b"]}
    save_model(net, tmp_path / "model.pt")
    assert _mode(tmp_path / "model.pt") == umask_022
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_failed_model_save_leaves_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = EstimatorNet([4, 8, 2])
    net.meta = {"estimated": ["a", "b"]}

    def broken_save(obj, f, *a, **k):
        Path(f).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_model(net, tmp_path / "model.pt")
    assert not any(tmp_path.iterdir())


def test_failed_r2sl_save_leaves_no_temporary(tmp_path: Path, umask_022: int) -> None:
    """crbnn.physics.r2sl had its own writer that left its temporary file behind on failure."""
    table = R2slTable(tau=np.arange(3.0), omega=np.arange(2.0), rho=np.ones((3, 2)), grid={"h": 0.1})
    table.save(tmp_path / "ok.h5")
    assert _mode(tmp_path / "ok.h5") == umask_022
    bad = R2slTable(tau=np.arange(3.0), omega=np.arange(2.0), rho=np.ones((3, 2)), grid={"h": object()})
    with pytest.raises(TypeError):
        bad.save(tmp_path / "bad.h5")  # the grid is not JSON: fails after the HDF5 file was opened
    assert [p.name for p in tmp_path.iterdir()] == ["ok.h5"]


def test_cache_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CRBNN_CACHE_DIR", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("CRBNN_CACHE_DIR")
    assert cache_dir() == Path.home() / ".cache" / "crbnn"
