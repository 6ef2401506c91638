"""Checks of a finished SLURM run of the tiny workflow (tests/slurm/run_slurm_test.sh).

* results/summary.json of the SLURM run and of the local run: every value equal (exactly), except
  the measured run times (TIMING_KEYS);
* every job but the local rules went through sbatch (the Snakemake log);
* what the scheduler accepted (``sacct``, the jobs run in the SLURM run's folder): every job that
  asked for a GPU ran in the ``gpu`` partition; every GPU-capable rule (passes compute.device)
  asked for ``gres/gpu=1`` (the run sets compute.gpus 1); no other job asked for a GPU;
* the cancelled job: CANCELLED in sacct, its rule and wildcards retried to COMPLETED, its SLURM log
  kept at .snakemake/slurm_logs/rule_<rule>/<wildcards>/<jobid>.log;
* slurmd was killed and restarted during the run (marker file).

Exit 0 when all hold; otherwise a message per failed check and exit 1.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from workflow_helpers import gpu_capable_rules  # noqa: E402

#: rules that run on the submitting machine (workflow/rules/data.smk: localrules)
LOCAL_RULES = {"fetch_inputs"}
#: summary leaves that are measured run times, not results: they differ between any two runs
TIMING_KEYS = {"time_per_voxel_s", "seconds_per_voxel", "samples_per_s", "wall_time_s"}
#: summary leaves that the SLURM run's overlay sets differently on purpose (compute.device: auto, so that
#: the GPU requests reach the scheduler; on a machine without a GPU both runs compute on the CPU)
OVERLAY_KEYS = {"config.device"}
GPU_PARTITION = "gpu"
CPU_PARTITION = "cpu"


def leaves(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{dotted key: value}`` of every leaf of a JSON document."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(obj, list):
        out = {}
        for i, v in enumerate(obj):
            out.update(leaves(v, f"{prefix}[{i}]"))
        return out
    return {prefix: obj}


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b) and type(a) is type(b)


def sacct_jobs(workdir: Path) -> list[dict[str, str]]:
    fields = ["JobID", "Partition", "ReqTRES", "State", "WorkDir", "Comment"]
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-a", "-S", "now-1days", "-o", ",".join(f + "%400" for f in fields)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    rows = [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line.strip()]
    return [r for r in rows if Path(r["WorkDir"]).resolve() == workdir.resolve()]


def rule_of(comment: str) -> tuple[str, str]:
    """(rule, wildcards) from the plugin's job comment ``rule_<rule>[_wildcards_<w>]``."""
    m = re.fullmatch(r"rule_(.+?)(?:_wildcards_(.*))?", comment)
    if not m:
        raise ValueError(f"job comment {comment!r} is not the plugin's rule_<name>_wildcards_<...>")
    return m.group(1), m.group(2) or ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--local", type=Path, required=True)
    ap.add_argument("--slurm", type=Path, required=True)
    ap.add_argument("--snakemake-log", type=Path, required=True)
    ap.add_argument("--cancelled", type=Path, required=True, help="file with the cancelled job id")
    ap.add_argument("--slurmd-restarted", type=Path, required=True, help="marker file")
    a = ap.parse_args()
    errors: list[str] = []

    # 1. summary numbers
    loc = leaves(json.loads((a.local / "results/summary.json").read_text()))
    slu = leaves(json.loads((a.slurm / "results/summary.json").read_text()))
    if loc.keys() != slu.keys():
        errors.append(f"summary keys differ: {sorted(loc.keys() ^ slu.keys())}")
    timing = {k for k in loc if re.split(r"[.\[]", k)[-1] in TIMING_KEYS}
    compared = (loc.keys() & slu.keys()) - timing - OVERLAY_KEYS
    differ = [k for k in compared if not same(loc[k], slu[k])]
    n_num = sum(isinstance(loc[k], (int, float)) and not isinstance(loc[k], bool) for k in compared)
    if differ:
        errors.append("summary values differ: " + "; ".join(f"{k}: local {loc[k]!r} slurm {slu[k]!r}" for k in sorted(differ)))
    else:
        print(f"check: results/summary.json equal to the local run: {len(compared)} values ({n_num} numbers) "
              f"identical; {len(timing)} run times not compared")

    # 2. every non-local job submitted with sbatch
    log = a.snakemake_log.read_text()
    local_rules = set(re.findall(r"^localrule (\w+):", log, flags=re.M))
    if not local_rules <= LOCAL_RULES:
        errors.append(f"rules run locally that should be submitted: {sorted(local_rules - LOCAL_RULES)}")
    submitted = len(re.findall(r"has been submitted with SLURM jobid", log))
    jobs = sacct_jobs(a.slurm)
    print(f"check: {submitted} sbatch submissions, {len(jobs)} SLURM jobs in sacct, local rules {sorted(local_rules)}")
    if not jobs or submitted != len(jobs):
        errors.append(f"{submitted} submissions in the Snakemake log but {len(jobs)} jobs in sacct")

    # 3. GPU requests against partitions
    device_rules, _ = gpu_capable_rules()
    seen_gpu_rules = set()
    for j in jobs:
        rule, _w = rule_of(j["Comment"])
        wants_gpu = "gres/gpu=" in j["ReqTRES"]
        if wants_gpu and j["Partition"] != GPU_PARTITION:
            errors.append(f"job {j['JobID']} ({rule}) asks for a GPU in partition {j['Partition']}")
        if rule in device_rules:
            seen_gpu_rules.add(rule)
            if "gres/gpu=1" not in j["ReqTRES"].split(","):
                errors.append(f"job {j['JobID']} ({rule}, GPU-capable) did not ask for one GPU: {j['ReqTRES']}")
        elif wants_gpu:
            errors.append(f"job {j['JobID']} ({rule}) asks for a GPU but its rule passes no device")
        elif j["Partition"] != CPU_PARTITION:
            errors.append(f"job {j['JobID']} ({rule}, CPU only) ran in partition {j['Partition']}")
    print(f"check: GPU-capable rules submitted with gres/gpu=1 to partition {GPU_PARTITION}: {sorted(seen_gpu_rules)}")

    # 4. the cancelled job: retried, log kept
    if not a.cancelled.is_file():
        errors.append("no job was cancelled (the fault injection did not happen)")
    else:
        jid = a.cancelled.read_text().strip()
        row = next((j for j in jobs if j["JobID"] == jid), None)
        if row is None or not row["State"].startswith("CANCELLED"):
            errors.append(f"cancelled job {jid} not CANCELLED in sacct: {row}")
        else:
            rule, wildcards = rule_of(row["Comment"])
            retried = [j for j in jobs if j["Comment"] == row["Comment"] and int(j["JobID"]) > int(jid)]
            if not any(j["State"] == "COMPLETED" for j in retried):
                errors.append(f"cancelled job {jid} ({rule}) was not retried to COMPLETED: {retried}")
            logfile = a.slurm / ".snakemake/slurm_logs" / f"rule_{rule}" / wildcards / f"{jid}.log"
            if not logfile.is_file():
                errors.append(f"SLURM log of the cancelled job not at {logfile}")
            else:
                print(f"check: job {jid} ({rule} {wildcards}) cancelled, retried as "
                      f"{[j['JobID'] for j in retried]}; its log {logfile.relative_to(a.slurm)}")
    if not a.slurmd_restarted.is_file():
        errors.append("slurmd was not killed and restarted during the run")
    else:
        print("check: slurmd killed and restarted during the run; the run finished")

    for e in errors:
        print(f"FAILED: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
