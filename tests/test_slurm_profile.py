"""The SLURM profile without SLURM: GPU requests and partitions agree (cheap; `make slurm-test` runs
the same profile on a real single-node SLURM).

The GPU count of a job is the rule's ``gpu=gpu_request`` (crbnn.config.settings.gpu_request) and
nothing else; the partition is chosen by snakemake-executor-plugin-slurm from the site overlay's
partition file.  These tests run the plugin's own partition choice on every rule.
"""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from snakemake.utils import update_config
from snakemake_executor_plugin_slurm.partitions import get_best_partition, read_partition_file
from workflow_helpers import REPO, gpu_capable_rules, rule_blocks

from crbnn.config import settings

PROFILE = REPO / "profiles" / "slurm"
SITE = REPO / "profiles" / "slurm-site-example"
#: keys a workflow profile must leave to the site overlay (a workflow profile wins key by key)
SITE_KEYS = {"default-resources", "slurm-partition-config"}


def _profile(path: Path) -> dict[str, Any]:
    return yaml.safe_load((path / "config.yaml").read_text())


def _paper_config() -> dict[str, Any]:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    update_config(cfg, yaml.safe_load((REPO / "config" / "paper.yaml").read_text()))
    return cfg


class _Resources(dict):
    def __getattr__(self, key: str) -> Any:
        return self[key]


class _Logger:
    def info(self, msg: str) -> None: ...
    def debug(self, msg: str) -> None: ...
    def warning(self, msg: str) -> None: ...


def _partition_of(rule: str, gpus: int) -> str | None:
    """The partition the plugin picks for a job of ``rule`` asking for ``gpus`` GPUs."""
    resources = _Resources(mem_mb=4000, runtime=60)
    resources.update(_profile(PROFILE).get("set-resources", {}).get(rule, {}))
    if gpus:
        resources["gpu"] = gpus
    job = SimpleNamespace(name=rule, threads=1, resources=resources)
    parts = read_partition_file(SITE / _profile(SITE)["slurm-partition-config"])
    return get_best_partition(parts, job, _Logger())


def test_every_rule_that_passes_a_device_requests_gpu_request() -> None:
    device, gpu = gpu_capable_rules()
    assert device, "no rule passes compute.device: the parser of workflow/rules/*.smk is broken"
    assert device == gpu, f"pass a device but request no GPU: {device - gpu}; request but pass none: {gpu - device}"


def test_the_profile_never_sets_gpus_or_partitions() -> None:
    """The GPU count comes only from gpu_request and the partition only from the site overlay."""
    prof = _profile(PROFILE)
    assert not SITE_KEYS & prof.keys(), f"profiles/slurm sets {SITE_KEYS & prof.keys()}: a site overlay could not override it"
    for rule, res in prof.get("set-resources", {}).items():
        assert rule in rule_blocks(), f"profiles/slurm set-resources names unknown rule {rule}"
        bad = {"gpu", "gres", "gpu_model", "slurm_partition", "slurm_account"} & res.keys()
        assert not bad, f"profiles/slurm sets {bad} for {rule}"
    assert "set-threads" not in prof, "threads come from the config (compute.simulate_threads, train.threads, ...)"


def test_the_site_overlay_sets_only_what_the_profile_leaves_open() -> None:
    site, prof = _profile(SITE), _profile(PROFILE)
    assert set(site) <= SITE_KEYS, f"overlay keys {set(site) - SITE_KEYS} would be ignored or clash"
    assert not set(site) & set(prof)


@pytest.mark.parametrize("rule", sorted(rule_blocks()))
def test_gpu_jobs_go_to_a_gpu_partition_and_others_to_a_cpu_partition(rule: str) -> None:
    cfg = _paper_config()
    gpus = settings.gpu_request(cfg)
    assert gpus >= 1, "config/paper.yaml should request a GPU per GPU-capable job"
    _, gpu_rules = gpu_capable_rules()
    limits = yaml.safe_load((SITE / "partitions.yaml").read_text())["partitions"]
    part = _partition_of(rule, gpus if rule in gpu_rules else 0)
    assert part is not None, f"no partition of {SITE}/partitions.yaml fits {rule}"
    if rule in gpu_rules:
        assert limits[part].get("max_gpu", 0) >= gpus, f"{rule} asks for {gpus} GPU(s) in partition {part}"
    else:
        assert limits[part].get("max_gpu", 0) == 0, f"{rule} (CPU only) sent to GPU partition {part}"
    # the same rules on a CPU-only config ask for no GPU and go to the CPU partition
    cpu_cfg = copy.deepcopy(cfg)
    cpu_cfg["compute"]["device"] = "cpu"
    assert settings.gpu_request(cpu_cfg) == 0
    assert limits[_partition_of(rule, 0)].get("max_gpu", 0) == 0


def test_the_profile_polls_with_squeue() -> None:
    """Plugin 2.8.0 reads sacct's "CANCELLED by <uid>" (a scancel'ed job) as still running."""
    assert _profile(PROFILE).get("slurm-status-command") == "squeue"
