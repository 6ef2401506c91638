"""Shared fixtures: the public pulse train from the local data folder."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("CRBNN_DATA_DIR", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.exists():
        pytest.fail(f"public input folder {DATA_DIR} not found; set CRBNN_DATA_DIR")
    return DATA_DIR


@pytest.fixture(scope="session")
def sequence(data_dir) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha, trf) of the 1142-pulse control file as float64 tensors."""
    with h5py.File(data_dir / "control_MT_v3p2_TR3p5ms_discretized.mat", "r") as f:
        alpha = np.array(f["alpha"], dtype=np.float64).ravel()
        trf = np.array(f["TRF"], dtype=np.float64).ravel()
    return torch.from_numpy(alpha), torch.from_numpy(trf)

