"""Model files: what a trained network carries (weights, architecture, meta); saving, loading, prediction.

A model file is ``{"state_dict", "meta"}`` (``torch.save``, loaded with ``weights_only=True``).
:func:`build_meta` gives the keys of every trained network (docs/architecture.md, "Trained
networks"); the workflow's train_network adds ``meta["nlls"]`` before :func:`save_model`:
``{"nominal": {p: value}, "bounds": {p: [low, high]}}`` (SI), the NLLS nominal values of every
tissue parameter (``nlls.nominal`` with the known values of the regime) and the NLLS box bounds of
the fitted ones (crbnn.config.settings.nlls_model_meta).  ``crbnn infer`` uses them for its
sqrt(CRB) and residual maps (:func:`crbnn.cli.nlls_settings_of`; defaults for files without).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from crbnn import __version__
from crbnn.common.io import write_torch
from crbnn.learn.training_data import TrainingData, normalize_inputs
from crbnn.learn.nets import EstimatorNet, build_from_architecture
from crbnn.learn.train_settings import TrainSettings


def build_meta(model: EstimatorNet, settings: TrainSettings, loss: str, data: TrainingData) -> dict[str, Any]:
    """Model metadata stored beside the weights (see docs/architecture.md, "Trained networks")."""
    return {
        "architecture": model.architecture(),
        "normalization": settings.normalization,
        "estimated": list(data.estimated),
        "nuisance": list(data.nuisance),  # unknown to the network besides its outputs (CRB, infer)
        "known": dict(data.known),  # parameters held at known values (SI), crbnn.config.regime
        "units": list(data.units),
        "output_offset": model.out_offset.tolist(),
        "output_scale": model.out_scale.tolist(),
        "sigma": float(settings.sigma),
        "m0_range": [float(v) for v in settings.m0_range],
        "sequence_sha256": data.sequence_sha256,
        "basis_sha256": data.basis_sha256,
        "rank": data.rank,
        "loss": loss,
        "settings": settings.to_dict(),
        "n_train": len(data),
        "crbnn_version": __version__,
    }


def save_model(model: EstimatorNet, path: str | os.PathLike[str]) -> None:
    """Write ``{"state_dict", "meta"}`` atomically with ``torch.save`` (tensors on CPU)."""
    meta = getattr(model, "meta", None)
    if not meta:
        raise ValueError("model has no .meta; train it with train_network or load it with load_model")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    write_torch(Path(path), {"state_dict": state, "meta": copy.deepcopy(meta)})


class RegimeMismatch(ValueError):
    """A network evaluated on data of another regime (estimated or nuisance parameters, or their order)."""


def check_regime(meta: dict[str, Any], estimated: list[str] | tuple[str, ...], nuisance: list[str] | tuple[str, ...],
                 network: str, data: str) -> None:
    """Raise :class:`RegimeMismatch` unless the network (``meta``) estimates exactly ``estimated``
    and was trained with exactly the ``nuisance`` parameters of the data set, in the same order:
    otherwise its outputs would be scored against the CRB of another estimation problem.

    >>> check_regime({"estimated": ["T1"], "nuisance": ["B1"]}, ["T1"], ["B1"], "crb", "test.h5")
    >>> check_regime({"estimated": ["T1"], "nuisance": ["B1"]}, ["T1"], ["omega0", "B1"], "crb", "test.h5")
    Traceback (most recent call last):
    ...
    crbnn.learn.model_file.RegimeMismatch: network crb and data test.h5 differ in their nuisance parameters: ['B1'] (network) against ['omega0', 'B1'] (data); evaluate a network on data simulated in its own regime (model.estimated, model.nuisance)
    """
    for what, mine, theirs in (("estimated", meta.get("estimated"), estimated),
                               ("nuisance", meta.get("nuisance"), nuisance)):
        if mine is None:
            continue  # files of older versions without the list: the hashes still pair them
        if list(mine) != list(theirs):
            raise RegimeMismatch(
                f"network {network} and data {data} differ in their {what} parameters: {list(mine)} (network) "
                f"against {list(theirs)} (data); evaluate a network on data simulated in its own regime "
                "(model.estimated, model.nuisance)")


class ModelFileError(ValueError):
    """A file that is not a model of this project (the message names the file and what it is)."""


def _what_file_is(path: Path, error: Exception) -> str:
    """A short description of a file torch cannot load as a model (for error messages)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(512)
    unsafe = any(k in str(error).lower() for k in ("weights only load failed", "unsupported global"))
    if size == 0:
        return "an empty file (0 bytes)"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "an HDF5 file, not a model saved by train_network (torch zip archive)"
    if unsafe:
        return "a pickle with objects other than tensors and plain data (not loaded: unsafe)"
    if head.startswith(b"PK\x03\x04"):
        return f"a damaged or truncated torch archive ({size} bytes)"
    try:
        head.decode("utf-8")
        return "a text file, not a model saved by train_network (torch zip archive)"
    except UnicodeDecodeError:
        return "not a model saved by train_network (torch zip archive)"


def read_model_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``{"state_dict", "meta"}`` dict of a model file, loaded with ``weights_only=True``.

    Raises :class:`ModelFileError` (one line naming the file and what is wrong) for a missing,
    empty, truncated, text or HDF5 file, a pickle with objects other than tensors and plain data, or
    a dict without ``state_dict`` and ``meta`` (architecture, estimated, normalization).
    """
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"{p}: model file not found")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types (OSError, RuntimeError, UnpicklingError, ...)
        raise ModelFileError(f"{p}: cannot load the model: {_what_file_is(p, e)}") from None
    if not isinstance(blob, dict) or not {"state_dict", "meta"} <= set(blob):
        keys = sorted(map(str, blob)) if isinstance(blob, dict) else type(blob).__name__
        raise ModelFileError(f"{p}: not a crbnn model: expected a dict with 'state_dict' and 'meta', got {keys}")
    meta = blob["meta"]
    missing = [k for k in ("architecture", "estimated", "normalization") if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise ModelFileError(f"{p}: not a crbnn model: its meta lacks {missing}")
    return blob


def load_model(
    path: str | os.PathLike[str],
    expect_basis_sha256: str | None = None,
    expect_sequence_sha256: str | None = None,
    device: torch.device | str = "cpu",
) -> EstimatorNet:
    """Load a saved network (``weights_only=True``) in eval mode with its ``.meta`` dict.

    Raises ValueError when ``expect_basis_sha256`` / ``expect_sequence_sha256`` are given and differ
    from the hashes the network was trained with (its inputs would mean something else).
    """
    blob = read_model_file(path)
    meta = blob["meta"]
    for what, expected, key in (
        ("basis", expect_basis_sha256, "basis_sha256"),
        ("pulse train (sequence)", expect_sequence_sha256, "sequence_sha256"),
    ):
        if expected is not None and expected != meta.get(key):
            raise ValueError(
                f"{path}: network was trained for {what} {key}={meta.get(key)!r}, but the data use "
                f"{expected!r}; retrain the network for this {what}"
            )
    try:
        model = build_from_architecture(meta["architecture"])
        model.load_state_dict(blob["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelFileError(f"{path}: the weights do not fit the architecture in its meta ({first})") from None
    model.meta = meta  # type: ignore[assignment]
    return model.to(device).eval()


@torch.no_grad()
def predict(
    model: EstimatorNet, coefficients: NDArray[np.complexfloating] | torch.Tensor, batch_size: int = 65536
) -> NDArray[np.float64]:
    """Estimates ``[..., E]`` in physical units (``model.meta["estimated"]``, ``["units"]``) of measured
    complex coefficients ``[..., R]`` (any scale and phase of M0).

    Raises ValueError on NaN/inf input or a wrong R.  Rows whose normalizer is zero (all-zero
    coefficients, or a zero first coefficient with ``first_coefficient``) give NaN.

    Example:
        >>> net = EstimatorNet([4, 8, 2]).eval()
        >>> net.meta = {"normalization": "l2"}
        >>> predict(net, np.ones((3, 2), complex)).shape
        (3, 2)
    """
    c = torch.as_tensor(coefficients)
    if not torch.is_complex(c):
        raise ValueError(f"predict needs complex coefficients [..., R], got dtype {c.dtype}")
    r = model.widths[0] // 2
    if c.shape[-1] != r:
        raise ValueError(f"predict: network expects R={r} coefficients, got shape {tuple(c.shape)}")
    lead = c.shape[:-1]
    c = c.reshape(-1, r).to(torch.complex64)
    if not torch.isfinite(torch.view_as_real(c)).all():
        bad = int((~torch.isfinite(torch.view_as_real(c))).reshape(len(c), -1).any(dim=1).sum())
        raise ValueError(f"predict: {bad} input row(s) contain NaN/inf coefficients")
    dev = model.out_offset.device
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(c), batch_size):
        x = normalize_inputs(c[i : i + batch_size].to(dev), model.meta["normalization"])
        out.append(model(x).double().cpu())
    model.train(was_training)
    est = torch.cat(out) if out else torch.zeros(0, model.widths[-1], dtype=torch.float64)
    return est.numpy().reshape(*lead, model.widths[-1])
