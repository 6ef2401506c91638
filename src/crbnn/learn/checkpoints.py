"""Checkpoints of a training run: what a resumed run needs to continue as if never stopped.

A checkpoint (``<checkpoint_dir>/last.pt``) holds the :class:`crbnn.learn.loop.TrainingState` on the
CPU (raw and averaged weights, optimizer, scheduler, noise generator, global RNG states, best epoch,
history, wall time) plus a fingerprint of the settings, the loss, the data and the initial weights.
A checkpoint whose fingerprint differs belongs to another run and is ignored (with a warning).
Checkpoints are loaded with ``torch.load(..., weights_only=True)``.

Before a new checkpoint is written the last one becomes ``previous.pt``.  A checkpoint that cannot be
loaded (truncated, not a torch archive) is renamed aside to ``<name>.damaged`` with a warning naming
it and the cause, and the run resumes from ``previous.pt`` or, failing that, starts from scratch;
so a damaged file never blocks a rerun.  A checkpoint that cannot be written (full disk, read-only
folder) raises an OSError naming the path and the cause.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from crbnn.common.io import sha256_arrays, write_torch
from crbnn.learn.training_data import TrainingData
from crbnn.learn.train_settings import TrainSettings

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"
PREVIOUS_NAME = "previous.pt"


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


def _write_failure(path: Path, error: BaseException) -> OSError:
    """An OSError for a checkpoint that could not be written: the path and the likely cause."""
    cause = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    folder = path.parent
    why = ""
    try:
        free = shutil.disk_usage(folder).free
        if free < 64 << 20:
            why = f"; the disk holding {folder} is full ({free >> 20} MB free): free space and rerun to resume"
    except OSError:
        pass
    if not why:
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as e:
            why = f"; the folder {folder} is not writable ({e.strerror or e}): make it writable and rerun"
    errno_ = error.errno if isinstance(error, OSError) else None
    return OSError(errno_, f"{path}: cannot write the training checkpoint ({cause}){why}")


def save_checkpoint(path: Path, state: dict[str, Any], run_fingerprint: str) -> None:
    """Write ``state`` (a :meth:`TrainingState.state_dict`) with the run's fingerprint, atomically;
    the checkpoint it replaces is kept as ``previous.pt`` (the fall-back of a damaged ``last.pt``).

    Raises:
        OSError: the checkpoint cannot be written (the message names the path and the cause).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            os.replace(path, path.with_name(PREVIOUS_NAME))
        write_torch(path, {"fingerprint": run_fingerprint, **state})
    except (OSError, RuntimeError) as e:  # torch reports a full disk as RuntimeError (iostream error)
        raise _write_failure(path, e) from None


def _set_aside(path: Path, error: BaseException) -> None:
    aside = path.with_name(path.name + ".damaged")
    cause = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    try:
        os.replace(path, aside)
        log.warning("checkpoint %s is damaged (%s); renamed to %s", path, cause, aside.name)
    except OSError as e:
        log.warning("checkpoint %s is damaged (%s) and could not be renamed aside (%s); ignoring it", path, cause, e)


def _read(path: Path) -> dict[str, Any] | None:
    """The checkpoint's content, or None (set aside, logged) when it cannot be loaded."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip (RuntimeError), EOFError, UnpicklingError, OSError, ...
        _set_aside(path, e)
        return None
    if not isinstance(ckpt, dict):
        _set_aside(path, TypeError(f"holds a {type(ckpt).__name__}, not a checkpoint"))
        return None
    return ckpt


def load_checkpoint(path: Path | None, run_fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` when it exists and belongs to this run (same fingerprint), else None.

    A damaged ``last.pt`` is renamed aside (logged) and ``previous.pt`` is tried; with neither the
    run starts from scratch.
    """
    if path is None:
        return None
    for candidate in (path, path.with_name(PREVIOUS_NAME)):
        if not candidate.exists():
            continue
        ckpt = _read(candidate)
        if ckpt is None:
            continue
        if ckpt.get("fingerprint") != run_fingerprint:
            log.warning("checkpoint %s is for other settings or data; starting afresh", candidate)
            return None
        if candidate != path:
            log.warning("resuming from the previous checkpoint %s", candidate)
        return ckpt
    return None

