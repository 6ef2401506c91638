"""Config files validate against workflow/schemas (crbnn.config.checks.validate_config, what common.smk
runs at parse time); bad values fail at parse time naming the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from workflow_helpers import REPO, run_snakemake

from crbnn.config.checks import ConfigError, validate_config

SCHEMAS = REPO / "workflow" / "schemas"
CONFIGS = ["config.yaml", "test.yaml", "paper.yaml"]


def load(name: str) -> dict:
    return yaml.safe_load((REPO / "config" / name).read_text())


@pytest.mark.parametrize("name", CONFIGS)
def test_configs_validate(name: str) -> None:
    cfg = load(name)
    assert validate_config(cfg, SCHEMAS, REPO) == pytest.approx(3.5e-3)  # the public train's TR
    assert cfg["basis"]["rank"] == 13 and cfg["priors"]["constraints"] == ["T2f < T1"]


def test_defaults_fill_an_empty_config() -> None:
    cfg: dict = {}
    validate_config(cfg, SCHEMAS, REPO)
    assert cfg["sequence"]["tr"] is None and cfg["priors"]["parameters"]["m0s"]["dist"] == "truncnormal"
    assert cfg["simulate"]["tables"]["train"]["shards"] >= 1


def test_every_key_documented() -> None:
    def walk(node: dict, where: str) -> None:
        for key, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{where}.{key} lacks a description"
            walk(sub, f"{where}.{key}")
        if node.get("type") == "object" and "properties" in node and where.count(".") <= 1:
            assert node.get("additionalProperties") is False, f"{where} allows unknown keys"

    for schema in SCHEMAS.glob("*.schema.yaml"):
        walk(yaml.safe_load(schema.read_text()), schema.name)


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ({"sequence": {"tr": "fast"}}, "tr"),
        ({"basis": {"rank": 0}}, "rank"),
        ({"priors": {"parameters": {"B1": {"dist": "normal"}}}}, "dist"),
        ({"simulate": {"tables": {"train": {"n": 10, "shards": 1, "extra": 1}}}}, "extra"),
        ({"no_such_section": {}}, "no_such_section"),
    ],
)
def test_bad_values_fail(patch: dict, key: str) -> None:
    cfg = load("test.yaml")
    for section, value in patch.items():
        if isinstance(value, dict) and section in cfg:
            cfg[section] = {**cfg[section], **value}
        else:
            cfg[section] = value
    with pytest.raises(ConfigError, match=key):
        validate_config(copy.deepcopy(cfg), SCHEMAS, REPO)


def test_dry_run_rejects_out_of_range(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("basis:\n  rank: 0\n")
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / "test.yaml"), str(bad), timeout=300)
    assert proc.returncode != 0
    assert "basis.rank" in proc.stdout + proc.stderr and "minimum" in proc.stdout + proc.stderr


def test_dry_run_rejects_wrong_type(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("simulate:\n  seed: twelve\n")
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / "test.yaml"), str(bad), timeout=300)
    assert proc.returncode != 0
    assert "simulate.seed" in proc.stdout + proc.stderr
