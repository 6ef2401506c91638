"""Settings derived from a validated config: what the workflow's rules pass to their jobs.

Every function takes the config dict (schema-validated with defaults filled in,
:func:`crbnn.config.checks.validate_config`) and what else it needs (the resolved TR, a table,
grid, image or loss name) and returns plain values.  The ``.smk`` files call them in one line
(rule params, resources, input functions); what is Snakemake's own (wildcards, paths, logs,
targets) stays there.

Rule params are provenance: Snakemake reruns a job when the ``repr`` of its params changes.  So
these functions are deterministic (the same config gives the same value, keys in a fixed order),
return JSON-serializable values, and hold only what the job uses (e.g.
:func:`nlls_solver_settings` leaves out the grid-subset keys, so changing the grid subset does not
refit the images).

>>> cfg = {"compute": {"device": "cpu", "gpus": 1}, "nlls": {"fit": ["T1"], "grid_stride": 2, "max_iter": 60}}
>>> gpu_request(cfg), nlls_solver_settings(cfg)
(0, {'fit': ['T1'], 'max_iter': 60})
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from crbnn.common.seeds import derive_seed
from crbnn.config.checks import prior_support
from crbnn.config.regime import known_values, regime_description

#: The sampled parameter tables: training, validation (model selection during training), the
#: development set (choices such as the training size or schedules) and the final test set.
SAMPLED_TABLES: tuple[str, ...] = ("train", "val", "dev", "final")
#: The sets the trained estimators are evaluated on (``results/evaluate_network/<set>/``,
#: ``results/evaluate_snr_sweep/<set>/``).
EVALUATION_SETS: tuple[str, ...] = ("dev", "final")
#: The one set that the verdicts on the paper's claims and the headline numbers read.
VERDICT_SET = "final"

#: Keys of config ``nlls`` that only select the grid subset NLLS fits (rule fit_nlls_grid).
GRID_SUBSET_KEYS: tuple[str, ...] = ("grid_realizations", "grid_stride")


# ----------------------------------------------------------------------------- data and tables
def table_size(config: Mapping[str, Any], name: str) -> int:
    """Number of rows of the sampled table ``name`` (one of :data:`SAMPLED_TABLES`).

    >>> table_size({"simulate": {"tables": {"val": {"n": 512, "shards": 1}}}}, "val")
    512
    """
    return int(config["simulate"]["tables"][name]["n"])


def table_seed(config: Mapping[str, Any], name: str) -> int:
    """Seed of the sampled table ``name``, derived from ``simulate.seed`` and the name.

    >>> table_seed({"simulate": {"seed": 2022}}, "train") == derive_seed(2022, "train")
    True
    """
    return derive_seed(config["simulate"]["seed"], name)


def basis_seed(config: Mapping[str, Any]) -> int:
    """Seed of the dictionary of the computed basis (rule compute_basis), from ``simulate.seed``."""
    return derive_seed(config["simulate"]["seed"], "basis")


def n_shards(config: Mapping[str, Any], name: str) -> int:
    """Number of simulate_shard jobs of table ``name``: its ``shards``, ``simulate.grid_shards`` for a grid.

    >>> cfg = {"simulate": {"tables": {"train": {"n": 8, "shards": 4}}, "grid_shards": 2}}
    >>> n_shards(cfg, "train"), n_shards(cfg, "grid_m0s-T1")
    (4, 2)
    """
    tables = config["simulate"]["tables"]
    if name in tables:
        return int(tables[name]["shards"])
    return int(config["simulate"]["grid_shards"])


# --------------------------------------------------------------------------------- compute
def gpu_request(config: Mapping[str, Any]) -> int:
    """GPUs per GPU-capable job: ``compute.gpus``, 0 when ``compute.device`` is the CPU.

    >>> gpu_request({"compute": {"device": "cuda", "gpus": 1}})
    1
    """
    return 0 if config["compute"]["device"] == "cpu" else int(config["compute"]["gpus"])


# ------------------------------------------------------------------------------ the regime
def known_tissue_values(config: Mapping[str, Any]) -> dict[str, float]:
    """``{name: value}`` (SI) of the tissue parameters the model holds known, from their fixed priors
    (:func:`crbnn.config.regime.known_values`).

    >>> cfg = {"model": {"estimated": ["m0s", "T1", "T2f"], "nuisance": ["M0_re", "M0_im", "omega0", "B1"]},
    ...        "priors": {"parameters": {"Rex": {"dist": "fixed", "value": 13.6},
    ...                                  "T2s": {"dist": "fixed", "value": 1.25e-5}}}}
    >>> known_tissue_values(cfg)
    {'Rex': 13.6, 'T2s': 1.25e-05}
    """
    model = config["model"]
    return known_values(config["priors"]["parameters"], model["estimated"], model["nuisance"])


# ------------------------------------------------------------------------------------ NLLS
def nlls_solver_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The NLLS settings every fit uses: config ``nlls`` without the grid-subset keys
    (:data:`GRID_SUBSET_KEYS`).

    Passing only these to the image, test-set and SNR-sweep fits keeps a change of the grid subset
    from rerunning them.
    """
    return {k: v for k, v in config["nlls"].items() if k not in GRID_SUBSET_KEYS}


def bounds_from_priors(
    priors: Mapping[str, Mapping[str, Any]],
    tr: float | None,
    fit: Sequence[str],
    overrides: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, tuple[float, float]]:
    """Box bounds (SI) of the fitted parameters ``fit``: each prior's support
    (:func:`crbnn.config.checks.prior_support`: ``units`` pi/TR and ``transform`` reciprocal applied),
    unless ``overrides`` (config ``nlls.bounds``) gives the pair.  A fitted parameter with a fixed or
    missing prior and no override is an error, and so is an empty box.

    >>> pri = {"T2f": {"dist": "uniform", "low": 5.0, "high": 50.0, "transform": "reciprocal"},
    ...        "omega0": {"dist": "uniform", "low": -1.0, "high": 1.0, "units": "pi/TR"}}
    >>> b = bounds_from_priors(pri, 3.5e-3, fit=("T2f", "omega0"))
    >>> b["T2f"], round(b["omega0"][1], 3)
    ((0.02, 0.2), 897.598)
    """
    overrides = dict(overrides or {})
    out: dict[str, tuple[float, float]] = {}
    for p in fit:
        if p in overrides:
            lo, hi = (float(v) for v in overrides[p])
        else:
            spec = priors.get(p)
            if spec is None or spec.get("dist") == "fixed":
                raise ValueError(f"no NLLS bounds for {p!r}: its prior has no low/high; set nlls.bounds.{p}")
            lo, hi = prior_support(spec, p, tr)
        if not hi > lo:
            raise ValueError(f"NLLS bounds of {p!r} are empty: [{lo}, {hi}]")
        out[p] = (lo, hi)
    return out


def nlls_bounds(config: Mapping[str, Any], tr: float | None) -> dict[str, tuple[float, float]]:
    """Box bounds (SI) of the NLLS fits, ``{p: (low, high)}`` for ``p`` in ``nlls.fit`` (in that order):
    the priors' support (``priors.parameters``, ``tr`` in s for priors in units of pi/TR), where
    ``nlls.bounds`` does not override it (:func:`bounds_from_priors`).

    The one source of the bounds of every fit (grids, test set, SNR sweep, images) and of the
    bounds stored in a model file (:func:`nlls_model_meta`).

    >>> r2f = {"dist": "uniform", "low": 4.0, "high": 50.0, "transform": "reciprocal"}
    >>> cfg = {"priors": {"parameters": {"T1": {"dist": "uniform", "low": 0.4, "high": 2.5}, "T2f": r2f}},
    ...        "nlls": {"fit": ["T1", "T2f"], "bounds": {"T1": [0.5, 2.0]}}}
    >>> nlls_bounds(cfg, 3.5e-3)
    {'T1': (0.5, 2.0), 'T2f': (0.02, 0.25)}
    """
    nlls = config["nlls"]
    return bounds_from_priors(config["priors"]["parameters"], tr, nlls["fit"], nlls["bounds"])


def nlls_nominal(config: Mapping[str, Any]) -> dict[str, float]:
    """Nominal values (SI) of every tissue parameter: ``nlls.nominal`` with the known parameters at
    their known values (:func:`known_tissue_values`; the config checks make them agree).

    >>> cfg = {"model": {"estimated": ["m0s", "T1", "T2f"], "nuisance": ["M0_re", "M0_im", "Rex", "omega0", "B1"]},
    ...        "priors": {"parameters": {"T2s": {"dist": "fixed", "value": 1.2e-5}}},
    ...        "nlls": {"nominal": {"T1": 1.2, "Rex": 13.6, "T2s": 1.25e-5}}}
    >>> nlls_nominal(cfg)
    {'T1': 1.2, 'Rex': 13.6, 'T2s': 1.2e-05}
    """
    nominal = {p: float(v) for p, v in config["nlls"]["nominal"].items()}
    return {**nominal, **known_tissue_values(config)}


def nlls_model_meta(config: Mapping[str, Any], tr: float) -> dict[str, dict[str, Any]]:
    """What ``crbnn infer`` needs for its sqrt(CRB) and residual maps, stored in a trained model's
    metadata as ``meta["nlls"]``: ``nominal`` (:func:`nlls_nominal`) and ``bounds`` (SI, ``{p: [low,
    high]}``, :func:`nlls_bounds`).

    >>> cfg = {"model": {"estimated": ["m0s", "T1", "T2f"], "nuisance": ["Rex", "T2s", "omega0", "B1"]},
    ...        "priors": {"parameters": {"T1": {"dist": "uniform", "low": 0.4, "high": 2.5}}},
    ...        "nlls": {"fit": ["T1"], "bounds": {}, "nominal": {"T1": 1.2}}}
    >>> nlls_model_meta(cfg, 3.5e-3)
    {'nominal': {'T1': 1.2}, 'bounds': {'T1': [0.4, 2.5]}}
    """
    bounds = {p: [float(lo), float(hi)] for p, (lo, hi) in nlls_bounds(config, tr).items()}
    return {"nominal": nlls_nominal(config), "bounds": bounds}


# ---------------------------------------------------------------------------- evaluation
def evaluation_seed(config: Mapping[str, Any], stream: str) -> int:
    """Noise seed of an evaluation (``test_set``, ``snr_sweep``, ``grid_<grid>``), from ``evaluate.seed``.

    >>> evaluation_seed({"evaluate": {"seed": 5}}, "test_set") == derive_seed(5, "test_set")
    True
    """
    return derive_seed(config["evaluate"]["seed"], stream)


def sweep_seed(config: Mapping[str, Any], evaluation_set: str) -> int:
    """Noise seed of the SNR sweep on ``evaluation_set`` (:data:`EVALUATION_SETS`); the final set
    keeps the stream ``snr_sweep`` of earlier runs, the development set gets its own.

    >>> sweep_seed({"evaluate": {"seed": 5}}, "final") == evaluation_seed({"evaluate": {"seed": 5}}, "snr_sweep")
    True
    """
    if evaluation_set not in EVALUATION_SETS:
        raise ValueError(f"unknown evaluation set {evaluation_set!r}; expected one of {EVALUATION_SETS}")
    return evaluation_seed(config, "snr_sweep" if evaluation_set == VERDICT_SET else f"snr_sweep_{evaluation_set}")


def tissue_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The in vivo tissue regions' settings from ``images.tissue``: ``regions`` (keyword arguments of
    ``crbnn.images.regions.tissue_regions``, the mixture's seed derived from ``images.tissue.seed``),
    ``block`` and ``bootstrap_seed`` (the block bootstrap of the in vivo claim,
    ``crbnn.evaluate.literature.claim_invivo``).

    >>> t = {"classes": ["CSF", "GM", "WM"], "report": ["WM"], "features": [2, 3], "filter_size": 3,
    ...      "min_probability": 0.9, "erode": 0, "bias_order": 3, "bias_iterations": 5, "n_init": 4, "seed": 4,
    ...      "block": 4}
    >>> s = tissue_settings({"images": {"tissue": t}})
    >>> s["regions"]["seed"] == derive_seed(4, "tissue_regions"), s["block"], s["regions"]["classes"]
    (True, 4, ['CSF', 'GM', 'WM'])
    """
    t = config["images"]["tissue"]
    regions = {"classes": list(t["classes"]), "report": list(t["report"]), "features": [int(k) for k in t["features"]],
               "filter_size": int(t["filter_size"]), "min_probability": float(t["min_probability"]),
               "erode": int(t["erode"]), "bias_order": int(t["bias_order"]),
               "bias_iterations": int(t["bias_iterations"]), "n_init": int(t["n_init"]),
               "seed": derive_seed(int(t["seed"]), "tissue_regions")}
    return {"regions": regions, "block": int(t["block"]), "bootstrap_seed": derive_seed(int(t["seed"]), "invivo_bootstrap")}


def grid_seed(config: Mapping[str, Any], grid: str) -> int:
    """Noise seed of evaluation grid ``grid`` (the same for its NLLS fit and its evaluation)."""
    return evaluation_seed(config, f"grid_{grid}")


# -------------------------------------------------------------------------------- training
def seed_replicates(config: Mapping[str, Any]) -> list[int]:
    """The further training seeds of ``train.seed_replicates`` (``train.seed`` itself left out).

    >>> seed_replicates({"train": {"seed": 1, "seed_replicates": [1, 11, 12]}})
    [11, 12]
    """
    train = config["train"]
    return [int(s) for s in train.get("seed_replicates", []) if int(s) != int(train["seed"])]


def fine_tunes_from_crb(config: Mapping[str, Any], loss: str) -> bool:
    """Whether the network of ``loss`` starts from the trained ``crb`` network
    (``bias_reduced`` with ``train.bias_reduced.init_from_crb``).

    >>> cfg = {"train": {"bias_reduced": {"init_from_crb": True}}}
    >>> fine_tunes_from_crb(cfg, "bias_reduced"), fine_tunes_from_crb(cfg, "crb")
    (True, False)
    """
    return loss == "bias_reduced" and bool(config["train"]["bias_reduced"]["init_from_crb"])


# ---------------------------------------------------------------------------------- images
def image_networks(config: Mapping[str, Any]) -> list[str]:
    """The networks the images stage maps: ``images.estimators`` that ``train.losses`` trains.

    >>> image_networks({"images": {"estimators": ["nlls", "mse", "crb"]}, "train": {"losses": ["crb"]}})
    ['crb']
    """
    return [e for e in config["images"]["estimators"] if e in config["train"]["losses"]]


def image_voxels(config: Mapping[str, Any], image: str) -> dict[str, Any]:
    """Voxel subsampling (``stride``, ``box``) of the per-voxel physics (NLLS, sqrt(CRB), residual) of
    ``image``: ``images.invivo_voxels`` for ``invivo``, ``images.phantom_voxels`` for a phantom.

    >>> cfg = {"images": {"invivo_voxels": {"stride": 2, "box": None}, "phantom_voxels": {"stride": 1, "box": None}}}
    >>> image_voxels(cfg, "invivo"), image_voxels(cfg, "vials")["stride"]
    ({'stride': 2, 'box': None}, 1)
    """
    key = "invivo_voxels" if image == "invivo" else "phantom_voxels"
    return config["images"][key]


def maps_invivo_with_nlls(config: Mapping[str, Any]) -> bool:
    """Whether the images stage maps the in vivo slice with NLLS (its region statistics then enter
    the summary).

    >>> maps_invivo_with_nlls({"images": {"images": ["invivo"], "estimators": ["nlls", "crb"]}})
    True
    >>> maps_invivo_with_nlls({})
    False
    """
    images = config.get("images", {})
    return "invivo" in images.get("images", []) and "nlls" in images.get("estimators", [])


# ------------------------------------------------------------------------------ manuscript
def summary_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration values that the manuscript quotes (``results/summary.json``, section
    ``config``; rule summarize adds ``n_pulses`` and ``tr`` from the pulse-train file).

    Each key becomes a macro ``\\Config<Key>`` (:func:`crbnn.report.latex.latex_macros`).
    """
    from crbnn.evaluate.snr_sweep import INTERVAL_PERCENT  # numpy: import only when a rule needs it

    tables = config["simulate"]["tables"]
    model, train, evaluate = config["model"], config["train"], config["evaluate"]
    optimizer, noise, sweep = train["optimizer"], train["noise"], evaluate["snr_sweep"]
    known = known_tissue_values(config)
    return {
        "sequence_source": config["sequence"]["source"],
        "basis_source": config["basis"]["source"],
        "rank": config["basis"]["rank"],
        "n_train": tables["train"]["n"],
        "n_val": tables["val"]["n"],
        "n_dev": tables["dev"]["n"],
        "n_test": tables[VERDICT_SET]["n"],
        "estimated": model["estimated"],
        "nuisance": model["nuisance"],
        "losses": list(train["losses"]),
        "train_sigma": noise["sigma"],
        "train_m0_min": noise["m0_min"],
        "train_m0_max": noise["m0_max"],
        "network": train["network"].get("preset", "custom"),
        "epochs": optimizer["epochs"],
        "batch_size": optimizer["batch_size"],
        "lr": optimizer["lr"],
        "sigma": evaluate["sigma"],
        "M0_abs": evaluate["M0_abs"],
        "grids": {
            g: {"points": math.prod(a["num"] for a in s["axes"].values()), "realizations": s["realizations"]}
            for g, s in config["grids"]["sets"].items()
        },
        "nlls_grid_realizations": config["nlls"]["grid_realizations"],
        "nlls_max_iter": config["nlls"]["max_iter"],
        "nlls_ftol": config["nlls"]["ftol"],
        "nlls_xtol": config["nlls"]["xtol"],
        "nlls_fit": list(config["nlls"]["fit"]),
        "test_realizations": train["test"]["realizations"],
        "priors": config["priors"]["parameters"],
        "known": known,
        "regime": regime_description(model["estimated"], model["nuisance"], known),
        "ema_decay": optimizer["ema_decay"],
        "lr_step_epochs": optimizer.get("lr_step_epochs"),
        "lr_gamma": optimizer.get("lr_gamma"),
        "grad_clip_factor": optimizer.get("grad_clip_factor"),
        "weight_decay": optimizer.get("weight_decay"),
        "normalization": train["normalization"],
        "train_threads": train["threads"],
        "device": config["compute"]["device"],
        # the fine-tuning of the bias-reduced network (crbnn.learn.train_settings.settings_for_loss)
        # (epochs, lr, lr_step_epochs, batch_size: the sub-section's value, else the optimizer's)
        "bias_reduced": {
            **{k: train.get("bias_reduced", {}).get(k) for k in ("realizations", "lam", "delta", "init_from_crb")},
            **{k: train.get("bias_reduced", {}).get(k) if train.get("bias_reduced", {}).get(k) is not None
               else optimizer.get(k) for k in ("epochs", "lr", "lr_step_epochs", "batch_size")},
        },
        "snr_sweep_snrs": sweep["snrs"],
        "snr_sweep_realizations": sweep["realizations"],
        "snr_sweep_nlls_samples": sweep["nlls_samples"],
        "snr_sweep_nlls_realizations": sweep["nlls_realizations"],
        "snr_sweep_interval_percent": INTERVAL_PERCENT,
    }
