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


def rule_blocks() -> dict[str, str]:
    """``{rule name: text of its block}`` of every rule in workflow/rules/*.smk and the Snakefile."""
    blocks: dict[str, str] = {}
    for path in [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]:
        name = None
        for line in path.read_text().splitlines():
            if line.startswith(("rule ", "checkpoint ")):
                name = line.split()[1].rstrip(":")
                blocks[name] = ""
            elif line and not line[0].isspace():
                name = None
            elif name is not None:
                blocks[name] += line + "\n"
    return blocks


def gpu_capable_rules() -> tuple[set[str], set[str]]:
    """(rules that pass ``compute.device`` to their script, rules requesting ``gpu=gpu_request``)."""
    blocks = rule_blocks()
    device = {n for n, b in blocks.items() if 'device=config["compute"]["device"]' in b}
    gpu = {n for n, b in blocks.items() if "gpu=gpu_request" in b}
    return device, gpu
