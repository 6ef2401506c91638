"""Helpers for tests that run the workflow (dry runs and the end-to-end run)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_snakemake(
    workdir: Path, *args: str, timeout: float = 1500, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run this repository's workflow in ``workdir`` with the interpreter running the tests.

    ``env`` updates the environment of the run (e.g. a ``PATH`` without TeX).
    """
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    full_env = None if env is None else {**os.environ, **env}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=workdir, env=full_env)
