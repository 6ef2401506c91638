"""Checkpoints of a training run: what a resumed run needs to continue as if never stopped.

A checkpoint (``<checkpoint_dir>/last.pt``) holds the :class:`crbnn.learn.loop.TrainingState` on the
CPU (raw and averaged weights, optimizer, scheduler, noise generator, global RNG states, best epoch,
history, wall time) plus a fingerprint of the settings, the loss, the data and the initial weights.
A checkpoint whose fingerprint differs belongs to another run and is ignored (with a warning).
Checkpoints are loaded with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from crbnn.common.io import sha256_arrays, write_torch
from crbnn.learn.training_data import TrainingData
from crbnn.learn.train_settings import TrainSettings

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"


def checkpoint_path(checkpoint_dir: str | os.PathLike[str] | None) -> Path | None:
    """``<checkpoint_dir>/last.pt``, or None without a checkpoint folder."""
    return None if checkpoint_dir is None else Path(checkpoint_dir) / CHECKPOINT_NAME


def fingerprint(settings: TrainSettings, loss: str, train: TrainingData, val: TrainingData, init: str) -> str:
    """sha256 of what decides the run: settings, loss, both data sets and the initial weights' hash."""
    head = json.dumps({"settings": settings.to_dict(), "loss": loss, "init": init}, sort_keys=True).encode()
    return sha256_arrays(head, train.fingerprint().encode(), val.fingerprint().encode())


def to_cpu(obj: Any) -> Any:
    """Tensors of a (nested dict/list) state moved to the CPU and detached."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_cpu(v) for v in obj]
    return obj


def save_checkpoint(path: Path, state: dict[str, Any], run_fingerprint: str) -> None:
    """Write ``state`` (a :meth:`TrainingState.state_dict`) with the run's fingerprint, atomically."""
    write_torch(path, {"fingerprint": run_fingerprint, **state})


def load_checkpoint(path: Path | None, run_fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` when it exists and belongs to this run (same fingerprint), else None."""
    if path is None or not path.exists():
        return None
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("fingerprint") != run_fingerprint:
        log.warning("checkpoint %s is for other settings or data; starting afresh", path)
        return None
    return ckpt
