"""Choosing the torch device and threads from the config's ``compute`` section (one place for all)."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import Any

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` as given.

    A CUDA device that torch cannot see is an error, not a silent fall-back to the CPU.

    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("gpu")
    Traceback (most recent call last):
    ...
    ValueError: compute.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu'
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not re.fullmatch(r"cuda(:\d+)?", str(name)):
        raise ValueError(f"compute.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {name!r}")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"compute.device is {name!r} but torch sees no CUDA device; use 'auto' or 'cpu'")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise RuntimeError(f"compute.device is {name!r} but torch sees {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(name)


def set_threads(n: int) -> None:
    """Use ``n`` >= 1 torch intra-op threads (Snakemake's ``threads`` of the job)."""
    torch.set_num_threads(max(1, int(n)))


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else :func:`platform.processor` or the machine type)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_device(device: torch.device) -> dict[str, Any]:
    """What a job computed on (the manuscript's hardware sentence): the device type, its name (the GPU's
    or the CPU's model), the CPU count of the machine and torch's intra-op threads.

    >>> d = describe_device(torch.device("cpu"))
    >>> d["type"], d["threads"] >= 1
    ('cpu', True)
    """
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    return {"type": device.type, "name": name, "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads()}
