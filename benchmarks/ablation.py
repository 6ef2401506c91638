"""What limits the CRB-trained network's efficiency at high SNR?  An ablation of the training.

Trains the CRB network with the real loop (`crbnn.learn.loop.train_network`, settings
`crbnn.learn.train_settings.TrainSettings`) at REDUCED cost and reports, per row, the mean
CRB-normalized loss over m0s, T1, T2f of the DEVELOPMENT set (``dev.h5``; never the final test set) at
the SNRs of the sweep, with the library's sweep code (`crbnn.evaluate.snr_sweep.evaluate_snr_sweep`,
20 noise realizations per sample, 1000 bootstrap resamples), and the CPU-minutes of the row
(``time.process_time`` of training and sweep, one torch thread).

Reduced cost (the baseline row): the default config's training (network ``default``, 40,000 signals,
batch 256, lr 0.005, adaptive clip 3, EMA 0.995, ``first_coefficient``) but 100 epochs instead of 400
with the learning-rate step scaled alike (halved every 12 epochs instead of 50).  Every other row
changes one thing (``ROWS``); the ``combined`` rows join the changes that helped.

Usage::

    # 1. extra training signals for the 80k / 160k rows (same priors and regime as the config, other seed)
    nice -n 19 .venv/bin/python benchmarks/ablation.py simulate --resources RES --config config/config.yaml \
        --n 120000 --out EXTRA
    # 2. the rows (resumes: rows already in the JSON are skipped; written after every row)
    nice -n 19 .venv/bin/python benchmarks/ablation.py run --data SIMDIR --extra EXTRA --json OUT.json \
        [--csv OUT.csv] [--rows baseline n20k ...]
    # 3. the plot
    .venv/bin/python benchmarks/ablation.py plot --json OUT.json --png OUT.png
    .venv/bin/python benchmarks/ablation.py --tiny   # seconds: synthetic data, two rows, checks that it runs

``SIMDIR`` holds ``train.h5``, ``val.h5`` and ``dev.h5`` (``results/simulate_dataset`` of a run), ``RES``
the ``resources`` folder of that run (sequence.h5, basis.h5, r2sl.h5).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crbnn.common.io import atomic_write
from crbnn.common.seeds import derive_seed
from crbnn.learn.training_data import TrainingData, read_training_data

#: SNRs of the sweep (config evaluate.snr_sweep.snrs) and its noise draws per sample.
def _default_evaluation() -> dict[str, Any]:
    """The config's ``evaluate`` section (config/config.yaml): the sweep of the rows is the workflow's."""
    import yaml

    return yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())["evaluate"]


_EVALUATE = _default_evaluation()
SNRS: tuple[float, ...] = tuple(float(x) for x in _EVALUATE["snr_sweep"]["snrs"])
REALIZATIONS = int(_EVALUATE["snr_sweep"]["realizations"])
N_BOOT = int(_EVALUATE["snr_sweep"]["n_boot"])
SWEEP_SEED = int(_EVALUATE["seed"])
SIGMA = float(_EVALUATE["sigma"])

#: The reduced-cost baseline: the default config's training with 100 epochs, lr step scaled 50 -> 12.
BASE: dict[str, Any] = {"epochs": 100, "lr_step_epochs": 12, "network": {"preset": "default"},
                        "normalization": "first_coefficient"}

#: The wider / deeper networks (mirror skips as in the presets).
WIDE = {"preset": "custom", "hidden": [256, 512, 512, 512, 256, 128], "residual": "mirror"}
DEEP = {"preset": "custom", "hidden": [128, 256, 256, 256, 256, 256, 128, 64], "residual": "mirror"}

#: Rows in the order they run (cheap first).  Each: settings changed from BASE, ``n_train`` (signals;
#: above 40,000 the extra simulated signals are appended), ``dtype``, and what it tests.
ROWS: dict[str, dict[str, Any]] = {
    "baseline": {"what": "default net, 40k, 100 epochs, lr step 12"},
    "n20k": {"n_train": 20000, "what": "20k training signals"},
    "l2": {"settings": {"normalization": "l2"}, "what": "l2 input normalization (the paper's)"},
    "log_snr": {"settings": {"m0_distribution": "log_uniform"}, "what": "|M0| log-uniform (log-uniform SNR)"},
    "lr_step25": {"settings": {"lr_step_epochs": 25}, "what": "slower lr decay (halved every 25 epochs)"},
    "deep": {"settings": {"network": DEEP}, "what": "deeper: 26-128-256x5-128-64-3"},
    "n80k": {"n_train": 80000, "what": "80k training signals"},
    "e200": {"settings": {"epochs": 200, "lr_step_epochs": 25}, "what": "200 epochs, lr step 25"},
    "wide": {"settings": {"network": WIDE}, "what": "wider: 26-256-512-512-512-256-128-3"},
    "float64": {"dtype": "float64", "what": "float64 network and data"},
    "n160k": {"n_train": 160000, "what": "160k training signals"},
    "e400": {"settings": {"epochs": 400, "lr_step_epochs": 50}, "what": "400 epochs, lr step 50 (the default schedule)"},
}


def row_settings(row: Mapping[str, Any]) -> dict[str, Any]:
    """The `TrainSettings` dict of a row: BASE with the row's changes (``network`` replaced whole)."""
    return {**BASE, **row.get("settings", {})}


# ---------------------------------------------------------------------------------------------- data
def simulate_extra(resources: Path, config_path: Path, n: int, out: Path, seed: int, shard: int = 10000) -> None:
    """Simulate ``n`` more training signals with the config's priors and regime (``seed``, not the run's
    training seed) into ``out/extra_<k>.h5`` shards of ``shard`` signals; existing shards are kept."""
    import yaml

    from crbnn.data.basis import load_basis
    from crbnn.data.datasets import write_dataset
    from crbnn.data.priors import sample_parameters
    from crbnn.data.sequence import load_sequence
    from crbnn.data.simulate import simulate_coefficients
    from crbnn.physics.r2sl import R2slTable

    cfg = yaml.safe_load(config_path.read_text())
    seq = load_sequence(resources / "sequence.h5")
    basis = load_basis(resources / "basis.h5")
    r2sl = R2slTable.load(resources / "r2sl.h5")
    est, nui = list(cfg["model"]["estimated"]), list(cfg["model"]["nuisance"])
    table = sample_parameters(cfg["priors"], n, seed=seed, tr=seq.tr)
    for k, start in enumerate(range(0, n, shard)):
        path = out / f"extra_{k}.h5"
        if path.is_file():
            continue
        t0 = time.process_time()
        rows = table[start : start + shard]
        res = simulate_coefficients(seq.alpha, seq.trf, seq.tr, basis.u, rows, estimated=est, nuisance=nui, r2sl=r2sl,
                                    device="cpu", batch_size=int(cfg["simulate"]["batch_size"]))
        write_dataset(path, rows, res["coefficients"], res["jacobian"], res["crb"], jacobian_names=[*est, *nui],
                      estimated=est, nuisance=nui, sequence_sha256=seq.sha256, basis_sha256=basis.sha256)
        print(f"{path}: {len(rows)} signals, {time.process_time() - t0:.0f} CPU-s", flush=True)


def concat(parts: Sequence[TrainingData]) -> TrainingData:
    """Training sets of one basis and pulse train, concatenated in order."""
    first = parts[0]
    for p in parts[1:]:
        if (p.basis_sha256, p.sequence_sha256, p.estimated) != (first.basis_sha256, first.sequence_sha256, first.estimated):
            raise ValueError(f"{p.path}: another basis, pulse train or estimated parameters than {first.path}")
    return TrainingData(torch.cat([p.coefficients for p in parts]), torch.cat([p.targets for p in parts]),
                        torch.cat([p.crb for p in parts]), first.estimated, first.units, first.sequence_sha256,
                        first.basis_sha256, first.path, first.nuisance, first.known)


def training_set(data: Path, extra: Path | None, n: int) -> TrainingData:
    """The first ``n`` signals of ``data/train.h5`` followed by ``extra/extra_*.h5``."""
    base = read_training_data(data / "train.h5")
    if n <= len(base):
        return base.subset(n)
    parts = [base]
    shards = sorted((extra or Path("/nonexistent")).glob("extra_*.h5"), key=lambda p: int(p.stem.split("_")[1]))
    for s in shards:
        if sum(len(p) for p in parts) >= n:
            break
        parts.append(read_training_data(s))
    have = sum(len(p) for p in parts)
    if have < n:
        raise SystemExit(f"need {n} training signals, have {have} in {data / 'train.h5'} and {extra}/extra_*.h5; "
                         f"run 'ablation.py simulate --n {n - len(base)} --out {extra}' first")
    return concat(parts).subset(n)


def to_float64(d: TrainingData) -> TrainingData:
    return TrainingData(d.coefficients.to(torch.complex128), d.targets.double(), d.crb.double(), d.estimated, d.units,
                        d.sequence_sha256, d.basis_sha256, d.path, d.nuisance, d.known)


# ---------------------------------------------------------------------------------------------- rows
def dev_sweep(model: Any, dev: TrainingData, snrs: Sequence[float], realizations: int, n_boot: int,
              dtype: torch.dtype) -> dict[str, Any]:
    """Per-SNR mean loss (and interval) of each parameter and their mean on ``dev`` (snr_sweep code)."""
    from crbnn.evaluate.snr_sweep import SweepEstimator, evaluate_snr_sweep
    from crbnn.learn.training_data import normalize_inputs

    norm = model.meta["normalization"]

    def estimate(y: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = normalize_inputs(torch.as_tensor(y).to(torch.complex128 if dtype == torch.float64 else torch.complex64), norm)
            return np.concatenate([model(x[i : i + 65536]).double().numpy() for i in range(0, len(x), 65536)])

    ds = evaluate_snr_sweep(dev.coefficients.numpy().astype(np.complex128), dev.targets.numpy().astype(np.float64),
                            dev.crb.numpy().astype(np.float64), dev.estimated, {"net": SweepEstimator(estimate)},
                            snrs=snrs, sigma=SIGMA, realizations=realizations, seed=SWEEP_SEED, n_boot=n_boot)
    out: dict[str, Any] = {}
    for p in ds["parameter"].values.tolist():
        for key in ("mean_loss", "mean_loss_lo", "mean_loss_hi", "median_loss"):
            out[f"{key}_{p}"] = [float(v) for v in ds[key].sel(estimator="net", parameter=p).values]
    return out


def run_row(name: str, row: Mapping[str, Any], data: Path | None, extra: Path | None, tiny: bool) -> dict[str, Any]:
    """Train one row's network and sweep it on the development set; returns the JSON record."""
    from crbnn.learn.loop import train_network
    from crbnn.learn.nets import count_weights
    from crbnn.learn.train_settings import TrainSettings

    cpu0, wall0 = time.process_time(), time.perf_counter()
    n_train = int(row.get("n_train", 40000))
    if tiny:
        from _synthetic import synthetic  # benchmarks/_synthetic.py (the script's folder is on sys.path)

        train, val, dev = synthetic(256), synthetic(128, seed=1), synthetic(64, seed=2)
        n_train = len(train)
    else:
        assert data is not None
        train, val, dev = training_set(data, extra, n_train), read_training_data(data / "val.h5"), read_training_data(data / "dev.h5")
    sd = row_settings(row)
    if tiny:
        sd.update(epochs=2, lr_step_epochs=1, batch_size=64, network={"preset": "tiny"})
    settings = TrainSettings.from_dict(sd)
    dtype = torch.float64 if row.get("dtype") == "float64" else torch.float32
    if dtype == torch.float64:
        train, val, dev = to_float64(train), to_float64(val), to_float64(dev)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        model, hist = train_network(train, val, settings, "crb", device="cpu")
        cpu_train = time.process_time() - cpu0
        sweep = dev_sweep(model, dev, SNRS, 2 if tiny else REALIZATIONS, 10 if tiny else N_BOOT, dtype)
    finally:
        torch.set_default_dtype(previous)
    val_loss = np.array([h["val_crb_mean"] for h in hist])
    jumps = np.abs(np.diff(np.log(val_loss))) if len(val_loss) > 1 else np.zeros(1)
    return {
        "row": name, "what": row["what"], "n_train": n_train,
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "weights": count_weights(model), "settings": settings.to_dict(), "snrs": list(SNRS),
        **sweep,
        "selected_epoch": int(model.meta["selected_epoch"]), "selected_val_loss": float(model.meta["selected_val_loss"]),
        "final_val_loss": float(val_loss[-1]), "max_val_jump": float(jumps.max()),
        "cpu_minutes": (time.process_time() - cpu0) / 60, "cpu_minutes_train": cpu_train / 60,
        "wall_minutes": (time.perf_counter() - wall0) / 60, "torch_threads": torch.get_num_threads(),
        "command": " ".join(["benchmarks/ablation.py", *sys.argv[1:]]),
    }


def write_outputs(records: list[dict[str, Any]], json_path: Path, csv_path: Path | None) -> None:
    with atomic_write(json_path) as tmp:
        tmp.write_text(json.dumps(records, indent=1))
    if csv_path is None:
        return
    cols = ["row", "what", "n_train", "weights", "dtype", "epochs", "cpu_minutes", "selected_epoch"]
    cols += [f"mean_loss_snr{s:g}" for s in SNRS]
    with atomic_write(csv_path) as tmp, tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in records:
            w.writerow([r["row"], r["what"], r["n_train"], r["weights"], r["dtype"], r["settings"]["epochs"],
                        f"{r['cpu_minutes']:.2f}", r["selected_epoch"], *[f"{v:.4g}" for v in r["mean_loss_mean"]]])


def print_table(records: Sequence[Mapping[str, Any]]) -> None:
    print(f"{'row':12} {'CPU-min':>8} " + " ".join(f"{f'SNR {s:g}':>8}" for s in SNRS))
    for r in records:
        print(f"{r['row']:12} {r['cpu_minutes']:8.2f} " + " ".join(f"{v:8.3f}" for v in r["mean_loss_mean"]))


def markdown_table(records: Sequence[Mapping[str, Any]]) -> str:
    """The rows as a Markdown table (docs/ablation.md is pasted from it): mean loss over m0s, T1, T2f
    per SNR, the 95 % interval at SNR 50 and 100, the weights, signals, epochs and CPU-minutes."""
    head = ("| row | change | weights | signals | epochs | " + " | ".join(f"SNR {s:g}" for s in SNRS)
            + " | SNR 50 95 % | SNR 100 95 % | CPU-min |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in records:
        k50, k100 = list(r["snrs"]).index(50), list(r["snrs"]).index(100)
        ci = [f"{r['mean_loss_lo_mean'][k]:.2f}-{r['mean_loss_hi_mean'][k]:.2f}" for k in (k50, k100)]
        what = r["what"].replace("|", "\\|")
        lines.append(f"| {r['row']} | {what} | {r['weights'] / 1e6:.2f} M | {r['n_train'] // 1000}k | "
                     f"{r['settings']['epochs']} | " + " | ".join(f"{v:.3f}" for v in r["mean_loss_mean"])
                     + f" | {ci[0]} | {ci[1]} | {r['cpu_minutes']:.1f} |")
    return "\n".join(lines)


#: Rows of the training-set-size scan (same everything else) and the target of issue 18 at SNR >= 35.
SIZE_ROWS = ("n20k", "baseline", "n80k", "n160k")
TARGET_HIGH = 1.15


def extrapolate_size(records: Sequence[Mapping[str, Any]], target: float = TARGET_HIGH) -> dict[str, Any]:
    """Power law of the excess loss over the training-set size: ``L(n) - 1 = a n^-b`` fitted (least squares
    in log-log) at every SNR to the rows of :data:`SIZE_ROWS` that ran, and the size ``n*`` where the fit
    reaches ``target`` (None where the excess does not fall with n) with its CPU-minutes at the
    reduced cost (CPU-minutes of the rows fitted linearly in n)."""
    rows = [r for name in SIZE_ROWS for r in records if r["row"] == name]
    out: dict[str, Any] = {"rows": [r["row"] for r in rows], "n_train": [r["n_train"] for r in rows], "target": target,
                           "snrs": list(SNRS), "a": [], "b": [], "n_star": [], "cpu_minutes_star": []}
    if len(rows) < 2:
        return out
    n = np.array([r["n_train"] for r in rows], dtype=float)
    cpu = np.polyfit(n, [r["cpu_minutes"] for r in rows], 1)
    for k in range(len(SNRS)):
        excess = np.array([r["mean_loss_mean"][k] - 1.0 for r in rows])
        if (excess <= 0).any():
            out["a"].append(None), out["b"].append(None), out["n_star"].append(None), out["cpu_minutes_star"].append(None)
            continue
        slope, icpt = np.polyfit(np.log(n), np.log(excess), 1)
        b, a = -slope, math.exp(icpt)
        n_star = (a / (target - 1.0)) ** (1.0 / b) if b > 0 else None
        out["a"].append(a), out["b"].append(b), out["n_star"].append(n_star)
        out["cpu_minutes_star"].append(float(np.polyval(cpu, n_star)) if n_star is not None else None)
    return out


def plot(records: Sequence[Mapping[str, Any]], png: Path, rows: Sequence[str] | None = None) -> None:
    """Mean loss (over m0s, T1, T2f) against SNR for ``rows`` (default: all), with the 95 % intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for r in records:
        if rows and r["row"] not in rows:
            continue
        s = np.asarray(r["snrs"], dtype=float)
        line, = ax.plot(s, r["mean_loss_mean"], marker="o", ms=3, label=f"{r['row']} ({r['cpu_minutes']:.0f} CPU-min)")
        ax.fill_between(s, r["mean_loss_lo_mean"], r["mean_loss_hi_mean"], color=line.get_color(), alpha=0.12, lw=0)
    ax.axhspan(0.90, 1.15, color="0.85", zorder=0, label="target 0.90-1.15 (SNR >= 35)")
    ax.axhline(1.0, color="k", lw=0.6)
    ax.set_xscale("log")
    ax.set_xticks(list(SNRS), [f"{s:g}" for s in SNRS])
    ax.set_xlabel("SNR = |M0| / sigma")
    ax.set_ylabel("mean loss over m0s, T1, T2f (MSE / CRB)")
    ax.set_title("CRB network on the development set (reduced-cost training)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    with atomic_write(png) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def load_records(path: Path | None) -> list[dict[str, Any]]:
    return json.loads(path.read_text()) if path is not None and path.is_file() else []


def join_records(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """The rows of several JSON files in the order of :data:`ROWS` (then the others); a later file's
    row of the same name wins."""
    by_name: dict[str, dict[str, Any]] = {}
    for p in paths:
        for r in load_records(p):
            by_name[r["row"]] = r
    order = {n: k for k, n in enumerate(ROWS)}
    return sorted(by_name.values(), key=lambda r: order.get(r["row"], len(order)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="synthetic data, two rows of 2 epochs: checks that it runs")
    ap.add_argument("--json", type=Path, default=None, help="rows (read first: rows already there are skipped)")
    sub = ap.add_subparsers(dest="cmd")
    s = sub.add_parser("simulate", help="extra training signals for the n_train > 40k rows")
    s.add_argument("--resources", type=Path, required=True, help="folder with sequence.h5, basis.h5, r2sl.h5")
    s.add_argument("--config", type=Path, default=Path("config/config.yaml"), help="priors and regime")
    s.add_argument("--n", type=int, default=120000)
    s.add_argument("--seed", type=int, default=derive_seed(2022, "ablation_extra"))
    s.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("run", help="train and sweep the rows")
    r.add_argument("--data", type=Path, required=True, help="folder with train.h5, val.h5, dev.h5")
    r.add_argument("--extra", type=Path, default=None, help="folder of 'simulate' (n_train > 40k rows)")
    r.add_argument("--json", type=Path, required=True)
    r.add_argument("--csv", type=Path, default=None)
    r.add_argument("--rows", nargs="+", default=list(ROWS), help=f"rows to run, of {list(ROWS)} and 'combined...'")
    r.add_argument("--combine", nargs="+", default=None, metavar="ROW",
                   help="also run the row 'combined_<rows>' that joins these rows' changes")
    r.add_argument("--threads", type=int, default=1)
    t = sub.add_parser("table", help="the rows of the JSON as a Markdown table")
    t.add_argument("--json", type=Path, nargs="+", required=True, help="row files (joined; a later file's row wins)")
    t.add_argument("--merged-json", type=Path, default=None, help="write the joined rows here (JSON and CSV beside)")
    t.add_argument("--fit-json", type=Path, default=None, help="write the training-size extrapolation here")
    p = sub.add_parser("plot", help="loss against SNR of the rows in the JSON")
    p.add_argument("--json", type=Path, nargs="+", required=True)
    p.add_argument("--png", type=Path, required=True)
    p.add_argument("--rows", nargs="+", default=None)
    a = ap.parse_args()

    if a.tiny:
        torch.set_num_threads(1)
        records = []
        for name in ("baseline", "log_snr"):
            records.append(run_row(name, ROWS[name], None, None, tiny=True))
        combo = combined_row(["log_snr", "l2"])
        records.append(run_row("combined", combo, None, None, tiny=True))
        print_table(records)
        print(markdown_table(records))
        if a.json:
            write_outputs(records, a.json, a.json.with_suffix(".csv"))
            plot(records, a.json.with_suffix(".png"))
        return
    if a.cmd == "simulate":
        torch.set_num_threads(1)
        simulate_extra(a.resources, a.config, a.n, a.out, a.seed)
    elif a.cmd == "run":
        torch.set_num_threads(a.threads)
        records = load_records(a.json)
        done = {rec["row"] for rec in records}
        todo = [(n, ROWS[n]) for n in a.rows]
        if a.combine:
            todo.append(("combined_" + "+".join(a.combine), combined_row(a.combine)))
        for name, row in todo:
            if name in done:
                print(f"{name}: in {a.json}, skipped", flush=True)
                continue
            rec = run_row(name, row, a.data, a.extra, tiny=False)
            # re-read: another process may have added rows to the same JSON meanwhile
            records = [r for r in load_records(a.json) if r["row"] != name] + [rec]
            write_outputs(records, a.json, a.csv)
            print(f"{name}: {rec['cpu_minutes']:.1f} CPU-min, mean loss "
                  + " ".join(f"{v:.3f}" for v in rec["mean_loss_mean"]), flush=True)
        print_table(records)
    elif a.cmd == "table":
        recs = join_records(a.json)
        if a.merged_json:
            write_outputs(recs, a.merged_json, a.merged_json.with_suffix(".csv"))
        print(markdown_table(recs))
        fit = extrapolate_size(recs)
        if a.fit_json:
            with atomic_write(a.fit_json) as tmp:
                tmp.write_text(json.dumps(fit, indent=1))
        print(json.dumps(fit))
    elif a.cmd == "plot":
        plot(join_records(a.json), a.png, a.rows)
    else:
        ap.error("give a command (simulate, run, plot) or --tiny")


def combined_row(names: Sequence[str]) -> dict[str, Any]:
    """One row with the changes of ``names`` (settings merged in order; largest n_train; float64 if any)."""
    settings: dict[str, Any] = {}
    out: dict[str, Any] = {"what": "combined: " + " + ".join(names)}
    for n in names:
        row = ROWS[n]
        settings.update(row.get("settings", {}))
        if "n_train" in row:
            out["n_train"] = max(out.get("n_train", 0), row["n_train"])
        if row.get("dtype"):
            out["dtype"] = row["dtype"]
    out["settings"] = settings
    return out


if __name__ == "__main__":
    main()
