"""Choosing the torch device and threads from the config's ``compute`` section."""

from __future__ import annotations

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available else CPU; ``"cpu"``/``"cuda"`` as given (CUDA must exist).

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("compute.device is 'cuda' but torch sees no CUDA device; use 'auto' or 'cpu'")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"compute.device must be 'auto', 'cpu' or 'cuda', got {name!r}")
    return torch.device(name)


def set_threads(n: int) -> None:
    """Use ``n`` >= 1 torch intra-op threads (Snakemake's ``threads`` of the job)."""
    torch.set_num_threads(max(1, int(n)))
