"""Shared fixtures: the public inputs and the public pulse train.

The inputs come the way the workflow gets them (``crbnn.data.inputs.cached_inputs``): the folder
``$CRBNN_DATA_DIR`` when set (CI, offline machines), otherwise a user cache (``$CRBNN_CACHE_DIR``
or ``~/.cache/crbnn``, sub-folder ``inputs``) filled once from the pinned URLs or from the mirror
``$CRBNN_MIRROR_URL``, sha256-checked.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from crbnn.data.inputs import InputError, cached_inputs

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """A folder holding sha256-verified copies of the three public inputs."""
    try:
        return cached_inputs()
    except InputError as err:
        pytest.fail(f"public inputs unavailable: {err}")


@pytest.fixture(scope="session")
def sequence(data_dir) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha, trf) of the 1142-pulse control file as float64 tensors."""
    with h5py.File(data_dir / "control_MT_v3p2_TR3p5ms_discretized.mat", "r") as f:
        alpha = np.array(f["alpha"], dtype=np.float64).ravel()
        trf = np.array(f["TRF"], dtype=np.float64).ravel()
    return torch.from_numpy(alpha), torch.from_numpy(trf)
