"""Checkpoints of an interrupted training run: atomic saving, fingerprints, removal."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from crbnn.common.io import atomic_write
from crbnn.learn.data import TrainingData
from crbnn.learn.settings import TrainSettings

CHECKPOINT_NAME = "last.pt"


def _atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` through :func:`crbnn.common.io.atomic_write` (usual permissions, no temporary left)."""
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)


def _fingerprint(settings: TrainSettings, loss: str, train: TrainingData, val: TrainingData, init: str) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"settings": settings.to_dict(), "loss": loss, "init": init}, sort_keys=True).encode())
    h.update(train.fingerprint().encode())
    h.update(val.fingerprint().encode())
    return h.hexdigest()


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


def remove_checkpoint(checkpoint_dir: str | os.PathLike[str]) -> None:
    """Delete the checkpoint after the final model is safely written (a later rerun starts afresh)."""
    (Path(checkpoint_dir) / CHECKPOINT_NAME).unlink(missing_ok=True)
    try:
        Path(checkpoint_dir).rmdir()  # only when empty
    except OSError:
        pass
