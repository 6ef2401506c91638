# Helpers of the evaluation and figure stages (evaluate.smk, figures.smk): names of the grids and
# estimators from the config, and input functions.  Kept apart so the stage files hold only rules.

GRIDS = list(config["grids"]["sets"])
GRID_RE = "|".join(GRIDS) if GRIDS else "^$"
ESTIMATORS = list(config["evaluate"]["estimators"])
NETWORKS = [e for e in ESTIMATORS if e != "nlls"]
# evaluate.estimators naming an untrained network is caught by crbnn.config.checks (common.smk).


def grid_seed(wildcards):
    """Noise seed of grid ``wildcards.grid``, derived from evaluate.seed and the grid name."""
    return derived.grid_seed(config, wildcards.grid)


def sweep_seed(wildcards):
    """Noise seed of the SNR sweep on set ``wildcards.set`` (dev and final draw independent noise)."""
    return derived.sweep_seed(config, wildcards.set)


def grid_inputs(wildcards):
    """Inputs of evaluate_grid: the simulated grid, its table, the networks and (if used) the NLLS fit."""
    out = {
        "data": f"results/simulate_dataset/grid_{wildcards.grid}.h5",
        "table": f"results/sample_parameters/grid_{wildcards.grid}.h5",
        "models": [f"results/train_network/{n}/model.pt" for n in NETWORKS],
    }
    if "nlls" in ESTIMATORS:
        out["nlls"] = f"results/fit_nlls_grid/{wildcards.grid}.h5"
    return out
