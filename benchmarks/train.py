"""Training throughput (signals per second) of the network presets on this machine's CPU and GPU.

Runs one short epoch of the real training loop (`crbnn.learn.loop.train_network`: noise drawing,
normalization, forward, loss, backward, Adam step) on synthetic coefficients with R = 13 and prints a
table.  Usage::

    .venv/bin/python benchmarks/train.py [--signals 16384] [--threads 2] [--presets default paper]
        [--losses crb] [--devices cpu cuda] [--batch-size 1024] [--json out.json]
    .venv/bin/python benchmarks/train.py --tiny    # seconds: checks that the benchmark runs (tests)

``bias_reduced`` counts each of its K noise realizations as one signal.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
from _synthetic import synthetic  # benchmarks/_synthetic.py (the script's folder is on sys.path)

from crbnn.learn.loop import train_network
from crbnn.learn.nets import build_network, count_weights
from crbnn.learn.train_settings import TrainSettings


def measure(preset: str, loss: str, device: str, n: int, batch_size: int, k: int) -> dict[str, object]:
    """Samples per second of the second of two epochs (the first warms up)."""
    train, val = synthetic(n), synthetic(1024, seed=1)
    settings = TrainSettings.from_dict(
        {"epochs": 2, "batch_size": batch_size, "network": {"preset": preset}, "realizations": k,
         "normalization": "l2"}
    )
    t0 = time.perf_counter()
    _, hist = train_network(train, val, settings, loss, device=device)
    sps = hist[-1]["samples_per_s"] * (k if loss == "bias_reduced" else 1)
    net = build_network({"preset": preset}, 26, 3)
    return {"preset": preset, "loss": loss, "device": device, "weights": count_weights(net),
            "batch": batch_size, "samples_per_s": sps, "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--signals", type=int, default=16384, help="training signals per epoch")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--presets", nargs="+", default=["default", "paper"])
    ap.add_argument("--losses", nargs="+", default=["crb"])
    ap.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--realizations", type=int, default=8, help="K of the bias_reduced loss")
    ap.add_argument("--json", default=None, help="also write the rows as JSON here")
    ap.add_argument("--tiny", action="store_true", help="256 signals, the tiny preset, every loss, K = 2: checks that the script runs")
    args = ap.parse_args()
    if args.tiny:
        args.signals, args.presets, args.losses, args.batch_size, args.realizations = 256, ["tiny"], ["mse", "crb", "bias_reduced"], 128, 2
    torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    rows = []
    for device in devices:
        for preset in args.presets:
            for loss in args.losses:
                bs = args.batch_size // args.realizations if loss == "bias_reduced" else args.batch_size
                rows.append(measure(preset, loss, device, args.signals, bs, args.realizations))
    name = torch.cuda.get_device_name() if "cuda" in devices else platform.processor() or platform.machine()
    print(f"# torch {torch.__version__}, {args.threads} CPU thread(s), {name}, {args.signals} signals/epoch")
    print(f"{'device':6} {'preset':8} {'loss':12} {'weights':>9} {'batch':>6} {'samples/s':>11}")
    for r in rows:
        print(f"{r['device']:6} {r['preset']:8} {r['loss']:12} {r['weights']:>9} {r['batch']:>6} {r['samples_per_s']:>11.0f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
