"""The record of a reference run (``docs/reference-run.json``) and the README block made from it.

Every measured number the README quotes about a full run comes from one committed record, written
from a finished run by ``make reference-record RUN=<run dir>`` (:func:`main`): the headline numbers
of ``results/summary.json``, the time and memory of every job from ``results/benchmarks/``, the wall
time of the run (its Snakemake log), the machine, the commit and the configuration.  The README
holds the numbers in a block between :data:`BEGIN` and :data:`END` that :func:`render_block`
generates from the record; ``tests/test_record.py`` fails when the block and the record disagree.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from crbnn.common.io import PathLike, atomic_write, sha256_file, write_json
from crbnn.common.parameters import PAPER_PARAMETERS

RECORD = Path("docs") / "reference-run.json"
BEGIN = "<!-- reference-run:begin (generated from docs/reference-run.json by `make reference-record`; do not edit) -->"
END = "<!-- reference-run:end -->"
#: rules listed in the README table (the longest first)
TOP_RULES = 8
LOSS_LABELS = {"crb": "CRB-trained", "mse": "MSE-trained", "bias_reduced": "bias-reduced"}


class RecordError(RuntimeError):
    """The run folder or the README is not what the record needs."""


# ------------------------------------------------------------------------------------ reading
def read_benchmarks(bench_dir: PathLike) -> dict[str, dict[str, float]]:
    """Every job's benchmark (``<rule>/<name>.tsv``) as ``{"rule/name": {"s", "max_rss_mb", "cpu_time_s"}}``."""
    out: dict[str, dict[str, float]] = {}
    root = Path(bench_dir)
    for tsv in sorted(root.rglob("*.tsv")):
        with open(tsv, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        if not rows:
            continue
        row = rows[-1]

        def num(key: str) -> float:
            try:
                return float(row.get(key, "nan"))
            except ValueError:
                return float("nan")

        key = tsv.relative_to(root).with_suffix("").as_posix()
        out[key] = {"s": num("s"), "max_rss_mb": num("max_rss"), "cpu_time_s": num("cpu_time")}
    return out


def rule_totals(jobs: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Per rule: number of jobs, sum of their times (s) and the largest peak memory (MB).

    >>> rule_totals({"a/x": {"s": 1.0, "max_rss_mb": 5.0}, "a/y": {"s": 2.0, "max_rss_mb": 3.0}})
    {'a': {'jobs': 2, 's': 3.0, 'max_rss_mb': 5.0}}
    """
    out: dict[str, dict[str, float]] = {}
    for key, b in jobs.items():
        rule = key.split("/", 1)[0]
        t = out.setdefault(rule, {"jobs": 0, "s": 0.0, "max_rss_mb": 0.0})
        t["jobs"] += 1
        t["s"] += float(b["s"])
        t["max_rss_mb"] = max(t["max_rss_mb"], float(b["max_rss_mb"]))
    return out


_LOG_NAME = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{6}\.\d+)\.snakemake\.log$")


_STEPS = re.compile(r"(\d+) of (\d+) steps \((\d+)%\) done")


def run_invocations(run_dir: PathLike) -> list[dict[str, Any]]:
    """The Snakemake invocations that produced the current results of ``run_dir``, oldest first.

    One entry per Snakemake log (``.snakemake/log``) that ran jobs (``steps (`` progress lines) and
    ended after the first benchmark of the current results was written (older logs belong to earlier
    runs, e.g. before ``make clean``): ``start`` (ISO time in the log's name), ``seconds`` (from that
    time to the log's last modification), ``jobs`` (steps done) and ``complete`` (it reached 100 %).
    """
    run = Path(run_dir)
    bench = [p.stat().st_mtime for p in (run / "results" / "benchmarks").rglob("*.tsv")]
    if not bench:
        return []
    first = min(bench)
    out = []
    for log in sorted((run / ".snakemake" / "log").glob("*.snakemake.log")):
        m = _LOG_NAME.search(log.name)
        end = log.stat().st_mtime
        text = log.read_text(errors="replace")
        if not m or "steps (" not in text or end < first:
            continue
        start = dt.datetime.strptime(m.group(1), "%Y-%m-%dT%H%M%S.%f")
        steps = _STEPS.findall(text)
        out.append({"start": start.isoformat(timespec="seconds"), "seconds": max(0.0, end - start.timestamp()),
                    "jobs": int(steps[-1][0]) if steps else 0, "complete": bool(steps) and steps[-1][2] == "100"})
    return out


def run_wall_time(run_dir: PathLike) -> float | None:
    """Wall time (s) that Snakemake spent producing the current results of ``run_dir``: the sum over
    :func:`run_invocations` (a run split into several invocations, interrupted and resumed, or an
    overlay added later, counts each invocation once).  None without a complete run (no log says
    ``(100%) done``).
    """
    inv = run_invocations(run_dir)
    return sum(i["seconds"] for i in inv) if any(i["complete"] for i in inv) else None


def machine_info() -> dict[str, Any]:
    """The machine this runs on: OS, CPU model and count, memory (GB), GPU (torch), Python."""
    info: dict[str, Any] = {
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu_model": platform.processor() or platform.machine(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gb"] = round(int(line.split()[1]) / 1024**2, 1)
                break
    except OSError:
        pass
    try:
        import torch

        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        info["torch"] = torch.__version__
    except Exception:  # noqa: BLE001 - the record is still useful without torch
        info["gpu"] = None
    return info


def git_commit(repo: PathLike) -> dict[str, Any]:
    """``{"commit": sha, "dirty": bool}`` of the checkout (``None`` values outside git)."""
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, check=True).stdout.strip())
        return {"commit": sha, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def run_commit(run_dir: PathLike, repo: PathLike) -> dict[str, Any]:
    """The commit the run was made from: that of ``run_dir`` when the run folder is a checkout of its
    own (a fresh clone, as the reference runs are), else that of ``repo``."""
    own = git_commit(run_dir)
    if own["commit"] is not None and Path(run_dir, ".git").exists():
        return own
    return git_commit(repo)


def build_record(
    run_dir: PathLike,
    repo: PathLike = ".",
    config_files: Sequence[PathLike] = ("config/config.yaml",),
    wall_time_s: float | None = None,
    machine: Mapping[str, Any] | None = None,
    benchmarks: Sequence[PathLike] = (),
    invocation_labels: Sequence[str] = (),
) -> dict[str, Any]:
    """The record of the finished run in ``run_dir`` (see the module docstring).

    ``config_files``: the configuration of the run (paths relative to ``repo`` are recorded as
    given, with their sha256).  ``wall_time_s`` overrides :func:`run_wall_time`; ``machine``
    overrides :func:`machine_info` (tests).  ``benchmarks``: JSON files written by the scripts in
    ``benchmarks/`` with ``--json`` on the same machine (recorded under their ``name``).
    ``invocation_labels``: what each Snakemake invocation of the run was (e.g. ``make reproduce``, then
    an overlay), one label per entry of :func:`run_invocations`.  Raises :class:`RecordError` without
    a summary or benchmarks, or with labels that do not match the invocations.
    """
    run = Path(run_dir)
    summary_path = run / "results" / "summary.json"
    if not summary_path.is_file():
        raise RecordError(f"{summary_path} not found: RUN must be the folder of a finished run")
    summary = json.loads(summary_path.read_text())
    jobs = read_benchmarks(run / "results" / "benchmarks")
    if not jobs:
        raise RecordError(f"no benchmarks under {run / 'results' / 'benchmarks'}")
    wall = run_wall_time(run) if wall_time_s is None else float(wall_time_s)
    invocations = run_invocations(run)
    if invocation_labels:
        if len(invocation_labels) != len(invocations):
            raise RecordError(f"{len(invocation_labels)} invocation labels for {len(invocations)} Snakemake invocations "
                              f"of {run} ({', '.join(i['start'] for i in invocations) or 'none'}): give one label each")
        invocations = [{**i, "label": str(lab)} for i, lab in zip(invocations, invocation_labels)]
    networks = {
        loss: {k: v for k, v in net.items() if k in ("crb_loss_mean", "crb_loss", "realizations", "n_samples", "seconds_per_voxel")}
        for loss, net in summary.get("networks", {}).items()
    }
    training = {
        loss: {k: v for k, v in t.items() if k in ("epochs", "wall_time_s")}
        for loss, t in summary.get("training", {}).items()
    }
    files = {}
    for c in config_files:
        p = Path(c) if Path(c).is_absolute() else Path(repo) / c
        files[str(c)] = sha256_file(p) if p.is_file() else None
    return {
        "format": 1,
        "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        **run_commit(run, repo),
        "config_files": files,
        "config": summary.get("config", {}),
        "networks": networks,
        "training": training,
        "claims": summary.get("claims", {}),
        "headline": summary.get("headline", {}),
        "regimes": summary.get("regimes", {}),
        "snr_sweep": {
            est: {snr: by_par["mean"]["mean_loss"] for snr, by_par in v.items() if "mean" in by_par}
            for est, v in summary.get("snr_sweep", {}).items()
        },
        "nlls_efficiency": summary.get("nlls_efficiency", {}),
        "invivo": summary.get("invivo", {}),
        "benchmark_scripts": {json.loads(Path(b).read_text())["name"]: json.loads(Path(b).read_text()) for b in benchmarks},
        "wall_time_s": wall,
        "invocations": invocations,
        "n_jobs": len(jobs),
        "rules": rule_totals(jobs),
        "jobs": jobs,
        "machine": dict(machine) if machine is not None else machine_info(),
    }


# ---------------------------------------------------------------------------------- rendering
def fmt_duration(seconds: float) -> str:
    """Human-readable duration.

    >>> fmt_duration(42.4), fmt_duration(1014.0), fmt_duration(3725.0)
    ('42 s', '16 min 54 s', '1 h 2 min')
    """
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {(s % 3600) // 60} min"


def _g(x: float) -> str:
    """Three significant digits, trailing zeros kept (1.00, not 1): :func:`crbnn.report.claims_text.format_3g`.

    >>> _g(1.004), _g(100.0)
    ('1.00', '100')
    """
    from crbnn.report.claims_text import format_3g

    return format_3g(x)


def _ordered(by_loss: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Items in the order of :data:`LOSS_LABELS`, other losses after them alphabetically."""
    rank = {k: i for i, k in enumerate(LOSS_LABELS)}
    return sorted(by_loss.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))


def render_block(record: Mapping[str, Any]) -> str:
    """The README text generated from ``record`` (without the markers): one paragraph per function
    below, in this order."""
    lines = _header_lines(record)
    lines += _network_lines(record)
    lines += claims_lines(record.get("claims", {}))
    lines += _regime_lines(record)
    lines += _nlls_efficiency_lines(record)
    lines += _sweep_lines(record)
    lines += _timing_lines(record)
    lines += _rule_lines(record)
    return "\n".join(lines)


def _header_lines(record: Mapping[str, Any]) -> list[str]:
    """Which run: the commit, the configuration files and the machine."""
    m = record.get("machine", {})
    gpu = m.get("gpu") or "no GPU"
    mem = f", {m['memory_gb']:g} GB" if m.get("memory_gb") else ""
    commit = (record.get("commit") or "unknown")[:10] + (" (uncommitted changes)" if record.get("dirty") else "")
    configs = ", ".join(f"`{c}`" for c in record.get("config_files", {})) or "unknown"
    return [
        f"Numbers of one reference run (record [docs/reference-run.json](docs/reference-run.json): commit "
        f"`{commit}`, configuration {configs}; machine: {m.get('cpu_count', '?')} CPU cores "
        f"({m.get('cpu_model', '?')}){mem}, {gpu}):",
        "",
    ]


def _network_lines(record: Mapping[str, Any]) -> list[str]:
    """The final test-set CRB-normalized loss of every network."""
    nets = record.get("networks", {})
    if not nets:
        return []
    draws = sorted({n.get("realizations") for n in nets.values() if n.get("realizations")})
    per = f"; {', '.join(map(str, draws))} noise draws per test sample" if draws else ""
    parts = [f"**{_g(n['crb_loss_mean'])}** {LOSS_LABELS.get(k, k)}" for k, n in _ordered(nets) if "crb_loss_mean" in n]
    rng = record.get("headline", {}).get("snr_range")
    mix = f", a mixture over SNR {rng[0]:g}-{rng[1]:g} (|M0| drawn uniformly)" if rng else ""
    return [
        f"* Final test-set CRB-normalized loss of the networks (mean over the estimated parameters{per}{mix}; "
        f"1 = an efficient unbiased estimator; per SNR: the sweep below): {', '.join(parts)}."
    ]


def _regime_lines(record: Mapping[str, Any]) -> list[str]:
    """sqrt(CRB) of m0s at the white-matter point in the run's regime and with all parameters unknown."""
    from crbnn.evaluate.claims import PAPER_SNR

    wm = record.get("regimes", {}).get("point2")
    if not wm or "m0s" not in wm.get("sqrt_crb", {}):
        return []
    pt = ", ".join(f"{k} {v:g}" for k, v in wm["point"].items())
    known, full = wm["sqrt_crb"]["m0s"], wm["sqrt_crb_all_unknown"]["m0s"]
    held = list(record.get("config", {}).get("known", {}))
    regime = f"with {' and '.join(held)} known" if held else "in the run's regime"
    return [
        f"* The regime: sqrt(CRB) of m0s at {pt} (SNR {PAPER_SNR:g}) is {_g(known)} {regime} and "
        f"{_g(full)} with all nine parameters unknown ({full / known:.1f} times wider)."
    ]


def _nlls_efficiency_lines(record: Mapping[str, Any]) -> list[str]:
    """NLLS efficiency on the m0s x T1 grid where the CRB is well inside the prior."""
    eff = record.get("nlls_efficiency", {}).get("m0s-T1")
    if not eff:
        return []
    rank = {p: i for i, p in enumerate(PAPER_PARAMETERS)}
    vals = ", ".join(f"{p} {_g(eff[p])}" for p in sorted((p for p in eff if p != "points"),
                                                            key=lambda p: rank.get(p, len(rank))))
    return [f"* NLLS on the m0s x T1 grid where sqrt(CRB) < prior width / 5: median std/sqrt(CRB) {vals}."]


def _sweep_lines(record: Mapping[str, Any]) -> list[str]:
    """The SNR sweep table: mean CRB-normalized loss per estimator and SNR."""
    sweep = record.get("snr_sweep", {})
    if not sweep:
        return []
    snrs = sorted({k for v in sweep.values() for k in v}, key=lambda k: float(k[3:]))
    order = [e for e in ("nlls", "mse", "crb", "bias_reduced") if e in sweep] + sorted(set(sweep) - {"nlls", "mse", "crb", "bias_reduced"})
    label = {"nlls": "NLLS", **LOSS_LABELS}
    lines = ["", "SNR sweep, mean CRB-normalized loss over the estimated parameters (final test set; "
             "`results/evaluate_snr_sweep/final/sweep.csv`):", "",
             "| SNR | " + " | ".join(label.get(e, e) for e in order) + " |", "|---" * (len(order) + 1) + "|"]
    lines += [f"| {k[3:]} | " + " | ".join(_g(sweep[e][k]) if k in sweep[e] else "-" for e in order) + " |" for k in snrs]
    lines.append("")
    return lines


def _timing_lines(record: Mapping[str, Any]) -> list[str]:
    """Times: the in vivo NLLS, the simulator benchmark, the whole run, the training of each network."""
    m = record.get("machine", {})
    lines = []
    invivo = record.get("jobs", {}).get("fit_image_nlls/invivo")
    if invivo:
        lines.append(
            f"* NLLS of the in vivo slice (`fit_image_nlls`, every mask voxel, with sqrt(CRB) and residual maps): "
            f"**{fmt_duration(invivo['s'])}** on {m.get('cpu_count', '?')} cores."
        )
    sim = record.get("benchmark_scripts", {}).get("simulate")
    if sim:
        lines.append(
            f"* Simulator (`benchmarks/simulate.py`, {sim['jacobian_columns']}-column Jacobian, 1 thread, CPU time): "
            f"**{sim['crbnn_1thread_cpu_s_per_signal'] * 1e3:.2f} ms** per signal; the plain per-pulse scipy loop "
            f"(signal only) {sim['reference_cpu_s_per_signal'] * 1e3:.1f} ms, ratio {sim['ratio']:.1f}"
            + (f"; the bare floor of one 6x6 matrix exponential per pulse {sim['expm_floor_cpu_s_per_signal'] * 1e3:.1f} ms, "
               f"ratio {sim['ratio_to_expm_floor']:.1f}" if "ratio_to_expm_floor" in sim else "")
            + "; peak memory "
            + ", ".join(f"{v:.0f} MiB after {k} signals" for k, v in sorted(sim["peak_rss_mib"].items(), key=lambda kv: int(kv[0]))) + "."
        )
    labelled = [i for i in record.get("invocations", []) if "label" in i]
    if len(labelled) > 1:
        parts = [f"{i['label']}: **{fmt_duration(i['seconds'])}**, {i['jobs']} job{'' if i['jobs'] == 1 else 's'}"
                 for i in labelled]
        lines.append(f"* Run time: {'; then '.join(parts)}.")
    elif record.get("wall_time_s") is not None:
        lines.append(
            f"* Run time: **{fmt_duration(record['wall_time_s'])}** for the whole workflow "
            f"({record.get('n_jobs', '?')} jobs)."
        )
    train = record.get("training", {})
    if train:
        parts = [f"{LOSS_LABELS.get(k, k)} {fmt_duration(t['wall_time_s'])}" for k, t in _ordered(train) if "wall_time_s" in t]
        lines.append(f"* Training wall time per network: {', '.join(parts)}.")
    return lines


def _rule_lines(record: Mapping[str, Any]) -> list[str]:
    """The longest rules: jobs, summed time and peak memory of one job."""
    rules = sorted(record.get("rules", {}).items(), key=lambda kv: -kv[1]["s"])[:TOP_RULES]
    if not rules:
        return []
    lines = [
        "",
        "| rule (longest first) | jobs | time, sum over its jobs | peak memory of one job |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{r}` | {int(t['jobs'])} | {fmt_duration(t['s'])} | {t['max_rss_mb']:.0f} MB |" for r, t in rules]
    return lines


def claims_lines(claims: Mapping[str, Any]) -> list[str]:
    """The per-claim table of the README block: verdict, criterion and numbers of every claim
    (:func:`crbnn.evaluate.claims.judge_all`)."""
    from crbnn.evaluate.claims import CLAIM_NAMES
    from crbnn.report.claims_text import claim_numbers_text

    rows = [claims[n] for n in CLAIM_NAMES if isinstance(claims.get(n), Mapping) and "verdict" in claims[n]]
    if not rows:
        return []
    seeds = "measured" if claims.get("seed_spread_measured") else "not measured in this run (overlay config/seeds.yaml)"
    out = ["", f"The paper's claims, judged one by one on the final test set and the grids (`claims` in "
           f"`results/summary.json`; criteria fixed in advance, docs/claims.md; spread over training seeds: {seeds}):", "",
           "| claim | verdict | criterion | numbers (95 % intervals) |", "|---|---|---|---|"]
    for v in rows:
        cells = [v["claim"], f"**{v['verdict']}**", v["criterion"], claim_numbers_text(v)]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    out.append("")
    return out


def readme_block(readme_text: str) -> str:
    """The text between the markers (stripped).  Raises :class:`RecordError` without them."""
    try:
        start = readme_text.index(BEGIN) + len(BEGIN)
        stop = readme_text.index(END, start)
    except ValueError:
        raise RecordError(f"README: markers {BEGIN!r} ... {END!r} not found") from None
    return readme_text[start:stop].strip()


def update_readme(readme_text: str, record: Mapping[str, Any]) -> str:
    """``readme_text`` with the block between the markers replaced by :func:`render_block`.

    >>> t = f"a\\n{BEGIN}\\nold\\n{END}\\nb\\n"
    >>> new = update_readme(t, {"machine": {}, "config_files": {}})
    >>> new.startswith("a\\n" + BEGIN) and new.endswith(END + "\\nb\\n") and "old" not in new
    True
    """
    readme_block(readme_text)  # checks the markers
    start = readme_text.index(BEGIN) + len(BEGIN)
    stop = readme_text.index(END, start)
    return readme_text[:start] + "\n" + render_block(record) + "\n" + readme_text[stop:]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m crbnn.report.record --run DIR [--config FILE ...] [--out docs/reference-run.json] [--readme README.md]``."""
    ap = argparse.ArgumentParser(prog="python -m crbnn.report.record", description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, type=Path, help="folder of a finished run (holds results/)")
    ap.add_argument("--config", nargs="+", default=["config/config.yaml"], help="config files of that run")
    ap.add_argument("--repo", type=Path, default=Path("."), help="the checkout (commit, config paths)")
    ap.add_argument("--out", type=Path, default=RECORD)
    ap.add_argument("--readme", type=Path, default=Path("README.md"))
    ap.add_argument("--wall-time", type=float, default=None, help="wall time in s (default: from the run's log)")
    ap.add_argument("--bench", nargs="*", default=[], help="JSON files of benchmarks/*.py --json (same machine)")
    ap.add_argument("--invocations", nargs="*", default=[],
                    help="one label per Snakemake invocation of the run, oldest first (e.g. 'make reproduce' "
                         "'the overlay config/seeds.yaml'); the README gives each one's time")
    a = ap.parse_args(argv)
    record = build_record(a.run, a.repo, a.config, wall_time_s=a.wall_time, benchmarks=a.bench,
                          invocation_labels=a.invocations)
    write_json(a.out, record)
    text = update_readme(a.readme.read_text(), record)
    with atomic_write(a.readme) as tmp:
        tmp.write_text(text)
    print(f"wrote {a.out} and the block of {a.readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
