"""Conda environment files parse and pin the same versions as pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PINS = dict(d.split("==") for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])
ALIASES = {"pytorch": "torch"}
#: conda-forge programs that are not Python packages (no pyproject pin): name -> the pinned spec
CONDA_ONLY = {"tectonic": "envs/manuscript.yaml"}
FAMILIES = ["simulate", "train", "evaluate", "manuscript"]


def _specs(deps: list) -> list[str]:
    out: list[str] = []
    for d in deps:
        out.extend(d["pip"] if isinstance(d, dict) else [d])
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_env_pins_agree_with_pyproject(family: str) -> None:
    env = yaml.safe_load((REPO / "envs" / f"{family}.yaml").read_text())
    assert env["channels"] and env["dependencies"]
    specs = _specs(env["dependencies"])
    assert "python=3.11" in specs
    checked = 0
    for spec in specs:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*==?\s*([^=\s]+)", spec)
        if not m or m.group(1) in ("python",):
            continue
        name = ALIASES.get(m.group(1), m.group(1))
        if name in CONDA_ONLY:
            continue
        assert name in PINS, f"envs/{family}.yaml pins {name}, which pyproject.toml does not"
        assert m.group(2) == PINS[name], f"envs/{family}.yaml: {name} {m.group(2)} != pyproject {PINS[name]}"
        checked += 1
    assert checked >= 3


def test_every_conda_directive_names_an_existing_env() -> None:
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for fam in re.findall(r'env\("(\w+)"\)', smk.read_text()):
            assert (REPO / "envs" / f"{fam}.yaml").is_file(), f"{smk.name}: env {fam!r} missing"


def test_tectonic_pinned_once() -> None:
    """envs/manuscript.yaml brings the tectonic that crbnn.report.manuscript names in its install hint."""
    from crbnn.report.manuscript import TECTONIC_SPEC

    env = yaml.safe_load((REPO / "envs" / "manuscript.yaml").read_text())
    assert TECTONIC_SPEC in _specs(env["dependencies"])
    assert "conda-forge" in env["channels"]
