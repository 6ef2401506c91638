"""What a run needs from the machine, checked before any job starts: memory per job and folders it can write.

:func:`memory_estimates` sizes the largest jobs of the data stage from the config; :func:`check_memory`
stops a config whose job would need more than its rule requests or the machine has;
:data:`RULE_MEM_MB` are the requests of the rules that the config does not size
(``workflow/rules/*.smk`` read them, so the estimate and the request are one number);
:func:`check_writable` stops a run in a read-only folder.  Errors are
:class:`crbnn.config.checks.ConfigError` naming the key or folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crbnn.common.parameters import PAPER_ESTIMATED, PAPER_NUISANCE
from crbnn.config.checks import ConfigError

#: Memory (MB) a job of these rules requests when the config does not set it (workflow/rules/*.smk
#: read these, so the estimate below and the request are one number).
RULE_MEM_MB = {"sample_parameters": 2000, "merge_shards": 8000}
#: Memory (MB) of a Python job with numpy, torch and h5py imported, before any data.
JOB_BASE_MB = 600


def check_writable(base: str | Path = ".") -> None:
    """The working directory and its ``results/`` and ``resources/`` folders (where present) accept a
    new file; otherwise a :class:`ConfigError` names the folder (checked when the workflow starts, so
    a read-only results folder stops it before any job instead of after the first ones).
    """
    import tempfile

    base = Path(base)
    for folder in (base, base / "results", base / "resources"):
        if not folder.is_dir():
            continue
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as e:
            raise ConfigError(f"{folder}: the workflow cannot write there ({e.strerror or e}); make the folder writable "
                              "or run in another directory (--directory)") from None


def machine_mb() -> float | None:
    """Physical memory of this machine in MB (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e6
    except (ValueError, OSError, AttributeError):
        return None


def memory_estimates(config: Mapping[str, Any]) -> list[tuple[str, str, float, float]]:
    """(rule, config key deciding it, estimated MB, requested MB) of the largest jobs of the data stage.

    Bytes per simulated row: 7 parameters (float64), R coefficients and R x P Jacobian entries
    (complex128), E CRBs (float64); a job holds about two copies of what it reads or writes, plus
    :data:`JOB_BASE_MB`.
    """
    sim = config.get("simulate", {})
    tables = sim.get("tables", {})
    rank = int(config.get("basis", {}).get("rank", 13))
    model = config.get("model", {})
    e = len(model.get("estimated", PAPER_ESTIMATED))
    n_unknown = e + len(model.get("nuisance", PAPER_NUISANCE))
    row = 7 * 8 + rank * 16 + rank * n_unknown * 16 + e * 8
    compute_mb = float(config.get("compute", {}).get("mem_mb", 4000))
    train_mb = float(config.get("train", {}).get("mem_mb", 8000))
    out = []
    for name, table in tables.items():
        n, shards = int(table["n"]), int(table["shards"])
        out.append(("sample_parameters", f"simulate.tables.{name}.n", JOB_BASE_MB + 4 * n * 7 * 8 / 1e6,
                    float(RULE_MEM_MB["sample_parameters"])))
        shard = -(-n // shards)
        out.append(("simulate_shard", f"simulate.tables.{name}.shards", JOB_BASE_MB + 2 * shard * row / 1e6, compute_mb))
        out.append(("merge_shards", f"simulate.tables.{name}.shards", JOB_BASE_MB + 2 * shard * row / 1e6,
                    float(RULE_MEM_MB["merge_shards"])))
    if "train" in tables and "val" in tables:
        n = int(tables["train"]["n"]) + int(tables["val"]["n"])
        out.append(("train_network", "simulate.tables.train.n", JOB_BASE_MB + 2 * n * row / 1e6, train_mb))
    return out


def check_memory(config: Mapping[str, Any]) -> None:
    """No job of the data stage is known to need more memory than its rule requests or the machine has."""
    machine = machine_mb()
    for rule, key, need, request in memory_estimates(config):
        if need > request:
            raise ConfigError(f"{key}: a {rule} job would need about {need:.0f} MB but requests {request:.0f} MB "
                              "(compute.mem_mb / train.mem_mb or the rule's default); lower the value (more shards, "
                              "fewer rows) or raise the memory request")
        # the machine: only when the request fits it (a request above it is meant for a bigger node)
        if machine is not None and request <= machine < need:
            raise ConfigError(f"{key}: a {rule} job would need about {need:.0f} MB, more than this machine's "
                              f"{machine:.0f} MB; lower the value (more shards, fewer rows)")
