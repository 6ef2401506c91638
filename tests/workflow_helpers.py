"""Helpers for tests that run the workflow (dry runs and the end-to-end run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_snakemake(workdir: Path, *args: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    """Run this repository's workflow in ``workdir`` with the interpreter running the tests."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=workdir)
