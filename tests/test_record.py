"""The reference-run record (docs/reference-run.json) and the README block generated from it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from crbnn.report import record as rec

REPO = Path(__file__).resolve().parents[1]
MACHINE = {"cpu_count": 2, "cpu_model": "Test CPU", "memory_gb": 24.0, "gpu": None}
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    """A finished run in miniature: summary, benchmarks of four jobs, a complete Snakemake log."""
    run = tmp_path / "run"
    (run / "results").mkdir(parents=True)
    summary = {
        "config": {"n_train": 20000, "sigma": 0.01},
        "networks": {
            "crb": {"crb_loss_mean": 0.5714, "crb_loss": {"m0s": 0.2}, "realizations": 20, "rmse": {"m0s": 0.1}},
            "mse": {"crb_loss_mean": 1.7234, "crb_loss": {"m0s": 0.9}, "realizations": 20},
        },
        "training": {"crb": {"epochs": 30, "wall_time_s": 228.0, "samples_per_s": 1.0}},
    }
    (run / "results" / "summary.json").write_text(json.dumps(summary))
    for key, s, rss in (("simulate_shard/train_0", 100.0, 600.0), ("simulate_shard/train_1", 120.5, 650.0),
                        ("train_network/crb", 230.0, 900.0), ("build_sequence/main", 1.2, 100.0)):
        p = run / "results" / "benchmarks" / f"{key}.tsv"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(HEADER + f"{s}\t0:00:00\t{rss}\t1\t1\t1\t0\t0\t50\t{s}\n")
    logs = run / ".snakemake" / "log"
    logs.mkdir(parents=True)
    start = float(int(time.time()) - 2000)  # whole seconds: the log name has no fraction here
    name = time.strftime("%Y-%m-%dT%H%M%S", time.localtime(start)) + ".000000.snakemake.log"
    (logs / name).write_text("...\n3 of 4 steps (75%) done\n")  # interrupted ...
    os.utime(logs / name, (start + 1000, start + 1000))
    name = time.strftime("%Y-%m-%dT%H%M%S", time.localtime(start + 1500)) + ".000000.snakemake.log"
    (logs / name).write_text("...\n1 of 1 steps (100%) done\n")  # ... and resumed: 14 s more
    os.utime(logs / name, (start + 1514, start + 1514))
    old = start - 90000  # a run before `make clean`: ended before the current results
    name = time.strftime("%Y-%m-%dT%H%M%S", time.localtime(old)) + ".000000.snakemake.log"
    (logs / name).write_text("...\n70 of 70 steps (100%) done\n")
    os.utime(logs / name, (old + 5000, old + 5000))
    (logs / "2099-01-01T000000.000000.snakemake.log").write_text("Building DAG of jobs...\n")  # ran no job
    bench_time = start + 10
    for tsv in (run / "results" / "benchmarks").rglob("*.tsv"):
        os.utime(tsv, (bench_time, bench_time))
    return run


def test_build_record(run_dir: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("a: 1\n")
    r = rec.build_record(run_dir, REPO, [str(cfg)], machine=MACHINE)
    assert r["networks"]["crb"] == {"crb_loss_mean": 0.5714, "crb_loss": {"m0s": 0.2}, "realizations": 20}
    assert r["training"] == {"crb": {"epochs": 30, "wall_time_s": 228.0}}
    assert r["n_jobs"] == 4 and r["rules"]["simulate_shard"] == {"jobs": 2, "s": 220.5, "max_rss_mb": 650.0}
    assert r["jobs"]["train_network/crb"]["s"] == 230.0
    assert r["wall_time_s"] == pytest.approx(1014, abs=1.5)
    assert len(r["config_files"][str(cfg)]) == 64
    assert r["machine"] == MACHINE and len(r["commit"]) == 40


def test_invocations_labelled(run_dir: Path) -> None:
    """Each Snakemake invocation (here an interrupted run and its resumption) keeps its own time and job
    count, a label each shows them one by one in the README, and a label count that does not match is an error."""
    inv = rec.run_invocations(run_dir)
    assert [(round(i["seconds"]), i["jobs"], i["complete"]) for i in inv] == [(1000, 3, False), (14, 1, True)]
    r = rec.build_record(run_dir, REPO, ["config/config.yaml"], machine=MACHINE,
                         invocation_labels=["make reproduce", "the overlay"])
    assert [i["label"] for i in r["invocations"]] == ["make reproduce", "the overlay"]
    block = rec.render_block(r)
    assert "make reproduce: **16 min 40 s**, 3 jobs; then the overlay: **14 s**, 1 job." in block
    with pytest.raises(rec.RecordError, match="1 invocation labels for 2 Snakemake invocations"):
        rec.build_record(run_dir, REPO, ["config/config.yaml"], machine=MACHINE, invocation_labels=["one"])


def test_missing_run_is_clear(tmp_path: Path) -> None:
    with pytest.raises(rec.RecordError, match="summary.json not found"):
        rec.build_record(tmp_path, REPO, machine=MACHINE)


def test_render_and_update(run_dir: Path) -> None:
    r = rec.build_record(run_dir, REPO, ["config/config.yaml"], machine=MACHINE)
    block = rec.render_block(r)
    assert "**0.571** CRB-trained, **1.72** MSE-trained" in block
    assert "20 noise draws per test sample" in block and "**16 min 54 s**" in block and "(4 jobs)" in block
    assert "| `train_network` | 1 | 3 min 50 s | 900 MB |" in block
    assert block.index("`train_network`") < block.index("`simulate_shard`") < block.index("`build_sequence`")
    text = f"intro\n{rec.BEGIN}\nstale 16 min\n{rec.END}\nrest\n"
    new = rec.update_readme(text, r)
    assert rec.readme_block(new) == block and "stale" not in new and new.endswith(f"{rec.END}\nrest\n")
    assert rec.update_readme(new, r) == new  # idempotent
    with pytest.raises(rec.RecordError, match="markers"):
        rec.update_readme("no markers", r)


def test_cli_writes_record_and_readme(run_dir: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"x\n{rec.BEGIN}\n{rec.END}\n")
    out = tmp_path / "docs" / "reference-run.json"
    assert rec.main(["--run", str(run_dir), "--repo", str(REPO), "--out", str(out), "--readme", str(readme)]) == 0
    r = json.loads(out.read_text())
    assert rec.readme_block(readme.read_text()) == rec.render_block(r)


def test_readme_numbers_come_from_the_record() -> None:
    """The README's block of measured numbers is exactly what the committed record renders to;
    without a record the block must be empty (no untraceable numbers)."""
    text = (REPO / "README.md").read_text()
    block = rec.readme_block(text)
    path = REPO / rec.RECORD
    if path.is_file():
        assert block == rec.render_block(json.loads(path.read_text())), (
            "README block differs from docs/reference-run.json; run: make reference-record RUN=<run dir>"
        )
    else:
        assert block == "", "README quotes run numbers but docs/reference-run.json does not exist"
    assert "make reference-record" in (REPO / "Makefile").read_text()
