"""Diagnostic benchmark: which NLLS fits land far from the truth, and why.

Draws test-set-like samples from the priors of a config (``crbnn.data.priors.sample_parameters``,
seeded), simulates their noise-free coefficients and CRBs (``crbnn.data.simulate``), adds noise at
each SNR the way the SNR sweep does (``crbnn.evaluate.grid.noisy_coefficients``: |M0| = SNR sigma,
uniform phase) and fits every noisy signal with the project's NLLS (``crbnn.estimate.nlls``, the
config's ``nlls`` settings, or the baseline single dictionary start with ``--baseline``).  Reports,
per SNR and parameter, the mean and median CRB-normalized loss (the sweep's statistics: per-sample
mean over the realizations, then mean / median over the samples) and the time per fit, then explains
the worst fits:

* the projected cost ||y - M0* g(theta)||^2 at the fit, at the true parameters and at the minimum of
  the truth's basin (a fit started at the truth).  If the truth's basin costs less than the fit,
  the solver stopped in a local minimum (fixable by starts); if not, the data themselves prefer
  the wrong answer (an identifiability issue that no solver fixes);
* the parameter that is off most (error / sqrt(CRB), nuisance omega0 and B1 included), whether the
  fit sits on a bound, whether the true omega0 lies near +-pi/TR (where the signal folds), and the
  start the solver began from;
* a figure per SNR (``--out``/<label>_worst_snr<SNR>.png): the cost along the straight line from the
  fit (t = 0) to the truth (t = 1), and along omega0 and B1 over their bounds (the other parameters at
  the fit, or at the truth).

    .venv/bin/python benchmarks/nlls_outliers.py --samples 48 --realizations 4            # the config's settings
    .venv/bin/python benchmarks/nlls_outliers.py --samples 48 --realizations 4 --baseline # one dictionary start
    .venv/bin/python benchmarks/nlls_outliers.py --tiny                                   # seconds (CI)

Use a seed other than the workflow's (``--seed``, default 12345): this is a development sample,
not the test set.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
#: Fits with a squared normalized error above this (in an estimated parameter) count as outliers.
OUTLIER = 20.0
#: Costs within this relative margin are one minimum (the LM stops at a relative decrease of ftol 1e-5).
SAME_MINIMUM = 1e-3


def load_config(path: Path) -> tuple[dict[str, Any], float]:
    """The config with schema defaults filled in (``crbnn.config.checks.validate_config``) and its TR."""
    from crbnn.config.checks import validate_config

    cfg = yaml.safe_load(path.read_text())
    tr = validate_config(cfg, REPO / "workflow" / "schemas", base=REPO)
    return cfg, float(tr)


def baseline_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The NLLS settings before the multi-start fix: one start (the best dictionary atom), no
    omega0 / B1 axes in the dictionary."""
    out = copy.deepcopy(settings)
    out.update(starts=1, distinct_starts=[], restart_above=None)
    out["dictionary"] = {k: v for k, v in out["dictionary"].items() if k in ("m0s", "T1", "T2f")}
    return out


def simulate(cfg: dict[str, Any], tr: float, n: int, seed: int) -> dict[str, Any]:
    """Parameters, noise-free coefficients and CRBs (every unknown's diagonal) of ``n`` prior draws."""
    import scipy.io

    from crbnn.common.parameters import TISSUE_PARAMETERS
    from crbnn.data.inputs import cached_inputs
    from crbnn.data.priors import sample_parameters
    from crbnn.data.sequence import load_sequence
    from crbnn.data.simulate import simulate_coefficients
    from crbnn.physics.crb import crb as crb_diag
    from crbnn.physics.r2sl import default_table

    data = cached_inputs()
    seq = load_sequence(data / "control_MT_v3p2_TR3p5ms_discretized.mat", tr=tr)
    u = scipy.io.loadmat(data / "basis_for_compress.mat")["u"][:, : int(cfg["basis"]["rank"])].astype(np.complex128)
    r2c = cfg["r2sl"]
    r2sl = default_table(**{k: r2c[k] for k in ("trf_min", "trf_max", "t2s_min", "t2s_max", "omega1_max", "b1_max", "n_tau", "n_omega")})
    table = sample_parameters(cfg["priors"], n, seed, tr)
    est, nui = tuple(cfg["model"]["estimated"]), tuple(cfg["model"]["nuisance"])
    sim = simulate_coefficients(seq.alpha, seq.trf, tr, u, table, est, nui, r2sl=r2sl)
    names = est + nui
    full = crb_diag(torch.as_tensor(sim["jacobian"]), 1.0).numpy()  # [n, P] at M0 = 1, sigma = 1
    return {"seq": seq, "u": u, "r2sl": r2sl, "table": table, "tissue": TISSUE_PARAMETERS,
            "c": sim["coefficients"], "crb": {p: full[:, names.index(p)] for p in names}}


def fit_snr(sim: dict[str, Any], cfg: dict[str, Any], tr: float, settings: dict[str, Any], snr: float,
            realizations: int, seed: int, dictionary: Any = None, refit: int = 12) -> dict[str, Any]:
    """Noisy data at one SNR and their NLLS fits with ``settings``; normalized errors per fitted parameter;
    the outliers and the ``refit`` fits with the largest errors refitted from the truth."""
    from crbnn.config.settings import nlls_bounds
    from crbnn.estimate.nlls import fit_nlls_with_settings
    from crbnn.evaluate.grid import noisy_coefficients

    sigma = float(cfg["evaluate"]["sigma"])
    n, R = sim["c"].shape
    y, _ = noisy_coefficients(sim["c"], realizations, snr * sigma, sigma, seed)
    bounds = nlls_bounds(cfg, tr)
    t0 = time.perf_counter()
    res = fit_nlls_with_settings(y.reshape(-1, R), sim["seq"], sim["u"], settings, bounds, r2sl=sim["r2sl"],
                                 dictionary=dictionary)
    dt = time.perf_counter() - t0
    fit = tuple(settings["fit"])
    truth = np.repeat(sim["table"][:, [sim["tissue"].index(p) for p in fit]], realizations, axis=0)
    crb = np.column_stack([np.repeat(sim["crb"][p], realizations) for p in fit]) / snr**2
    z = (res.theta - truth) / np.sqrt(crb)  # signed error / sqrt(CRB), [n K, P]
    from crbnn.estimate.nlls import PaperModel

    model = PaperModel(sim["seq"], sim["u"], fit=fit, fixed=settings["nominal"], r2sl=sim["r2sl"])
    cost_truth = projected_cost(model, y.reshape(-1, R), truth)
    # the minimum of the truth's basin: a fit started at the truth, for the fits with a large error
    est = [fit.index(p) for p in cfg["model"]["estimated"]]
    zmax = np.abs(z[:, est]).max(axis=1)
    check = np.flatnonzero((zmax**2 > OUTLIER) | (zmax >= np.sort(zmax)[-min(len(zmax), refit)]))
    basin = np.full(len(z), np.nan)
    if check.size:
        ref = fit_nlls_with_settings(y.reshape(-1, R)[check], sim["seq"], sim["u"], settings, bounds,
                                     r2sl=sim["r2sl"], start=truth[check])
        basin[check] = ref.cost
    return {"y": y.reshape(-1, R), "res": res, "truth": truth, "z": z, "fit": fit, "bounds": bounds,
            "cost_truth": cost_truth, "cost_basin": basin, "time_per_fit": dt / (n * realizations),
            "n": n, "K": realizations}


def loss_table(out: dict[str, Any], estimated: list[str]) -> dict[str, dict[str, float]]:
    """Mean and median (over samples) of the per-sample mean (over realizations) normalized loss."""
    fit = out["fit"]
    z2 = out["z"][:, [fit.index(p) for p in estimated]] ** 2
    per = z2.reshape(out["n"], out["K"], -1).mean(axis=1)
    per = np.concatenate([per, per.mean(axis=1, keepdims=True)], axis=1)
    return {p: {"mean": float(per[:, j].mean()), "median": float(np.median(per[:, j]))}
            for j, p in enumerate([*estimated, "mean"])}


def projected_cost(model: Any, y: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """||y - M0* g(theta)||^2 with M0 in closed form, for rows of y and theta."""
    from crbnn.estimate.nlls import projected_cost as pc

    g, _ = model(torch.as_tensor(theta), jacobian=False)
    return pc(torch.as_tensor(y), g).numpy()


def kind(cost_fit: float, cost_basin: float) -> str:
    """'local minimum' when the minimum of the truth's basin (a fit started at the truth) costs less
    than the fit, else 'identifiability' (the data prefer the wrong basin: no start fixes it)."""
    return "local minimum" if cost_basin < cost_fit * (1 - SAME_MINIMUM) else "identifiability"


def explain(out: dict[str, Any], sim: dict[str, Any], settings: dict[str, Any], tr: float, estimated: list[str],
            worst: int) -> list[dict[str, Any]]:
    """The ``worst`` fits by their largest squared normalized error over ``estimated``, explained."""
    fit, res, z = out["fit"], out["res"], out["z"]
    zi = np.abs(z[:, [fit.index(p) for p in estimated]]).max(axis=1)
    order = np.argsort(-zi)[:worst]
    c_truth = out["cost_truth"][order]
    lo = np.array([out["bounds"][p][0] for p in fit])
    hi = np.array([out["bounds"][p][1] for p in fit])
    rows = []
    for k, i in enumerate(order):
        th = res.theta[i]
        at_bound = [p for j, p in enumerate(fit) if min(th[j] - lo[j], hi[j] - th[j]) <= 1e-6 * (hi[j] - lo[j])]
        w_truth = out["truth"][i, fit.index("omega0")] * tr / np.pi if "omega0" in fit else float("nan")
        w_fit = th[fit.index("omega0")] * tr / np.pi if "omega0" in fit else float("nan")
        rows.append({
            "fit_index": int(i), "sample": int(i // out["K"]), "max_z_estimated": float(zi[i]),
            "z": {p: round(float(z[i, j]), 2) for j, p in enumerate(fit)},
            "off_most": fit[int(np.argmax(np.abs(z[i])))],
            "truth": {p: float(out["truth"][i, j]) for j, p in enumerate(fit)},
            "theta": {p: float(th[j]) for j, p in enumerate(fit)},
            "omega0_truth_pi_tr": float(w_truth), "omega0_fit_pi_tr": float(w_fit),
            "at_bound": at_bound, "cost_fit": float(res.cost[i]), "cost_truth": float(c_truth[k]),
            "cost_truth_basin": float(out["cost_basin"][i]), "cost_start": float(res.cost0[i]),
            "kind": kind(res.cost[i], out["cost_basin"][i]),
        })
    return rows


def profile_figure(out: dict[str, Any], sim: dict[str, Any], settings: dict[str, Any], tr: float,
                   rows: list[dict[str, Any]], path: Path, title: str, points: int = 41) -> None:
    """Cost of the worst fits along the line fit -> truth and along omega0 and B1 (the others at the
    fit or at the truth)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crbnn.estimate.nlls import PaperModel

    fit = out["fit"]
    model = PaperModel(sim["seq"], sim["u"], fit=fit, fixed=settings["nominal"], r2sl=sim["r2sl"])
    n = len(rows)
    scan = [p for p in ("omega0", "B1") if p in fit]  # the parameters whose basins the fits confuse
    fig, axes = plt.subplots(1 + len(scan), max(n, 1), figsize=(3.2 * max(n, 1), 2.8 * (1 + len(scan))), squeeze=False)
    t = np.linspace(-0.25, 1.25, points)
    for k, row in enumerate(rows):
        i = row["fit_index"]
        a, b = out["res"].theta[i], out["truth"][i]
        y = np.repeat(out["y"][i : i + 1], points, axis=0)
        line = projected_cost(model, y, a[None] + t[:, None] * (b - a)[None])
        ax = axes[0, k]
        ax.plot(t, line, "k-")
        ax.axvline(0, color="C3", ls=":", label="fit")
        ax.axvline(1, color="C2", ls=":", label="truth")
        ax.set_yscale("log")
        ax.set_xlabel("t (fit -> truth)")
        ax.set_title(f"fit {i}: {row['off_most']} off most\nmax |error|/sqrt(CRB) {row['max_z_estimated']:.1f}, "
                     f"{row['kind']}", fontsize=8)
        if k == 0:
            ax.set_ylabel("cost ||r||^2")
            ax.legend(fontsize=7)
        for r, p in enumerate(scan, start=1):
            j = fit.index(p)
            unit = tr / np.pi if p == "omega0" else 1.0
            v = np.linspace(*out["bounds"][p], points)
            ax = axes[r, k]
            for base, lab, col in ((a, "others at fit", "C3"), (b, "others at truth", "C2")):
                th = np.repeat(base[None], points, axis=0)
                th[:, j] = v
                ax.plot(v * unit, projected_cost(model, y, th), color=col, label=lab)
            ax.axvline(a[j] * unit, color="C3", ls=":")
            ax.axvline(b[j] * unit, color="C2", ls=":")
            ax.set_yscale("log")
            ax.set_xlabel("omega0 (pi/TR)" if p == "omega0" else p)
            if k == 0:
                ax.set_ylabel("cost ||r||^2")
                ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    ap.add_argument("--samples", type=int, default=48, help="prior draws (default 48)")
    ap.add_argument("--realizations", type=int, default=4, help="noise realizations per sample and SNR")
    ap.add_argument("--snrs", default="35,50,100")
    ap.add_argument("--seed", type=int, default=12345, help="development-sample seed (not the workflow's)")
    ap.add_argument("--worst", type=int, default=5, help="worst fits explained (and plotted) per SNR")
    ap.add_argument("--baseline", action="store_true", help="the single-start settings before the fix")
    ap.add_argument("--set", action="append", default=[], help="override an nlls key, e.g. --set starts=4 (YAML value)")
    ap.add_argument("--label", default=None, help="name of the run's outputs (default: baseline or config)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "nlls_outliers")
    ap.add_argument("--no-figures", action="store_true")
    ap.add_argument("--tiny", action="store_true", help="4 samples, 1 realization, SNR 50, 2 worst (seconds; CI)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    if a.tiny:
        a.samples, a.realizations, a.snrs, a.worst = 4, 1, "50", 2
    cfg, tr = load_config(a.config)
    from crbnn.config.settings import nlls_nominal, nlls_solver_settings

    settings = {**nlls_solver_settings(cfg), "nominal": nlls_nominal(cfg)}
    if a.baseline:
        settings = baseline_settings(settings)
    for item in a.set:
        key, val = item.split("=", 1)
        settings[key] = yaml.safe_load(val)
    if a.tiny:  # a coarse dictionary (at most 3 values per axis) and short fits
        settings["max_iter"] = min(int(settings["max_iter"]), 10)
        settings["dictionary"] = {k: {**v, "num": min(int(v["num"]), 3)} for k, v in settings["dictionary"].items()}
    estimated = list(cfg["model"]["estimated"])
    label = a.label or ("baseline" if a.baseline else "config")
    print(f"NLLS outliers: {a.samples} samples x {a.realizations} realizations, seed {a.seed}, settings {label} "
          f"(starts {settings.get('starts', 1)}, dictionary axes {list(settings['dictionary'])})", flush=True)
    t0 = time.perf_counter()
    sim = simulate(cfg, tr, a.samples, a.seed)
    print(f"simulated {a.samples} samples in {time.perf_counter() - t0:.1f} s", flush=True)
    from crbnn.estimate.nlls import settings_dictionary

    t0 = time.perf_counter()
    dictionary = settings_dictionary(sim["seq"], sim["u"], settings, r2sl=sim["r2sl"])
    t_dict = time.perf_counter() - t0
    n_atoms = 0 if dictionary is None else len(dictionary.atoms)
    print(f"dictionary of {n_atoms} atoms in {t_dict:.1f} s (built once per process)", flush=True)
    report: dict[str, Any] = {"dictionary_atoms": n_atoms, "dictionary_s": t_dict, "settings": label, "overrides": a.set, "samples": a.samples,
                              "realizations": a.realizations, "seed": a.seed, "snr": {}}
    for js, snr in enumerate(float(s) for s in a.snrs.split(",")):
        out = fit_snr(sim, cfg, tr, settings, snr, a.realizations, seed=a.seed + 1000 + js, dictionary=dictionary,
                      refit=max(12, a.worst))
        table = loss_table(out, estimated)
        z2 = out["z"][:, [out["fit"].index(p) for p in estimated]] ** 2
        outlier = z2.max(axis=1) > OUTLIER
        local = outlier & (out["cost_basin"] < out["res"].cost * (1 - SAME_MINIMUM))
        rows = explain(out, sim, settings, tr, estimated, a.worst)
        iters = float(out["res"].iterations.mean())
        report["snr"][str(int(snr))] = {"loss": table, "time_per_fit_s": out["time_per_fit"], "iterations_per_fit": iters,
                                        "outliers": int(outlier.sum()), "outliers_local_minimum": int(local.sum()),
                                        "fits": len(z2), "worst": rows}
        print(f"\nSNR {snr:g}: {out['time_per_fit'] * 1e3:.0f} ms/fit, {iters:.1f} LM iterations/fit (all starts), {int(outlier.sum())}/{len(z2)} fits with a normalized "
              f"error^2 > {OUTLIER:g} in an estimated parameter: {int(local.sum())} in a local minimum (the truth's basin "
              f"costs less), {int((outlier & ~local).sum())} where the wrong basin costs less (identifiability)")
        print("  " + "  ".join(f"{p}: mean {v['mean']:.2f} median {v['median']:.2f}" for p, v in table.items()))
        for r in rows:
            print(f"  fit {r['fit_index']:4d} (sample {r['sample']}): z {r['z']}, off most {r['off_most']}, "
                  f"omega0 truth/fit {r['omega0_truth_pi_tr']:+.2f}/{r['omega0_fit_pi_tr']:+.2f} pi/TR, "
                  f"at bound {r['at_bound']}, cost fit/truth/truth's basin/start {r['cost_fit']:.3g}/{r['cost_truth']:.3g}/"
                  f"{r['cost_truth_basin']:.3g}/{r['cost_start']:.3g}: {r['kind']}")
        if not a.no_figures:
            png = a.out / f"{label}_worst_snr{int(snr)}.png"
            profile_figure(out, sim, settings, tr, rows, png, f"NLLS ({label}) worst fits at SNR {snr:g}",
                           points=9 if a.tiny else 41)
            print(f"  figure: {png}")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / f"{label}.json").write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
