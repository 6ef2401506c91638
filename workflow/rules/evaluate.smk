# Stage 4: evaluation of the estimators (NLLS reference and trained networks) on the test grids and
# the test set.  build_grid writes results/sample_parameters/grid_<grid>.h5, which the generic
# simulate rules turn into results/simulate_dataset/grid_<grid>.h5; NLLS fits run in their own
# cached rule (fit_nlls_grid) so that retraining a network does not refit.  Science in
# crbnn.grids, crbnn.nlls and crbnn.evaluation; settings in workflow/schemas/{grids,evaluate,nlls}.schema.yaml.

GRIDS = list(config["grids"]["sets"])
GRID_RE = "|".join(GRIDS) if GRIDS else "^$"
ESTIMATORS = list(config["evaluate"]["estimators"])
NETWORKS = [e for e in ESTIMATORS if e != "nlls"]
_untrained = [e for e in NETWORKS if e not in config["train"]["losses"]]
if _untrained:
    raise WorkflowError(f"invalid config: evaluate.estimators names {_untrained}, which train.losses does not train")


def grid_seed(wildcards):
    """Noise seed of grid ``wildcards.grid``, derived from evaluate.seed and the grid name."""
    return derive_seed(config["evaluate"]["seed"], f"grid_{wildcards.grid}")


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


rule build_grid:
    output:
        "results/sample_parameters/grid_{grid}.h5",
    params:
        name="{grid}",
        axes=lookup(dpath="grids/sets/{grid}/axes", within=config),
        fixed=config["grids"]["fixed"],
    wildcard_constraints:
        grid=GRID_RE,
    log:
        "results/logs/build_grid/{grid}.log",
    benchmark:
        "results/benchmarks/build_grid/{grid}.tsv"
    conda:
        env("evaluate")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/build_grid.py"


rule fit_nlls_grid:
    input:
        data="results/simulate_dataset/grid_{grid}.h5",
        table="results/sample_parameters/grid_{grid}.h5",
        sequence="resources/sequence.h5",
        basis="resources/basis.h5",
        r2sl="resources/r2sl.h5",
    output:
        "results/fit_nlls_grid/{grid}.h5",
    params:
        realizations=lookup(dpath="grids/sets/{grid}/realizations", within=config),
        M0_abs=config["evaluate"]["M0_abs"],
        sigma=config["evaluate"]["sigma"],
        random_phase=config["evaluate"]["random_phase"],
        seed=grid_seed,
        priors=config["priors"]["parameters"],
        nlls=config["nlls"],
    wildcard_constraints:
        grid=GRID_RE,
    log:
        "results/logs/fit_nlls_grid/{grid}.log",
    benchmark:
        "results/benchmarks/fit_nlls_grid/{grid}.tsv"
    conda:
        env("evaluate")
    threads: config["nlls"]["threads"]
    resources:
        mem_mb=4000,
        runtime=240,
    script:
        "../scripts/fit_nlls_grid.py"


rule evaluate_grid:
    input:
        unpack(grid_inputs),
    output:
        "results/evaluate_grid/{grid}.nc",
    params:
        estimators=ESTIMATORS,
        networks=NETWORKS,
        realizations=lookup(dpath="grids/sets/{grid}/realizations", within=config),
        M0_abs=config["evaluate"]["M0_abs"],
        sigma=config["evaluate"]["sigma"],
        random_phase=config["evaluate"]["random_phase"],
        seed=grid_seed,
        batch_size=config["evaluate"]["batch_size"],
    wildcard_constraints:
        grid=GRID_RE,
    log:
        "results/logs/evaluate_grid/{grid}.log",
    benchmark:
        "results/benchmarks/evaluate_grid/{grid}.tsv"
    conda:
        env("evaluate")
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    script:
        "../scripts/evaluate_grid.py"


rule evaluate_test_set:
    input:
        test="results/simulate_dataset/test.h5",
        models=[f"results/train_network/{n}/model.pt" for n in NETWORKS],
        sequence="resources/sequence.h5",
        basis="resources/basis.h5",
        r2sl="resources/r2sl.h5",
    output:
        "results/evaluate_test_set/errors.nc",
    params:
        estimators=ESTIMATORS,
        networks=NETWORKS,
        samples=config["evaluate"]["test_set"]["samples"],
        nlls_samples=config["evaluate"]["test_set"]["nlls_samples"],
        m0_range=config["evaluate"]["test_set"]["m0_range"],
        sigma=config["evaluate"]["sigma"],
        seed=derive_seed(config["evaluate"]["seed"], "test_set"),
        batch_size=config["evaluate"]["batch_size"],
        priors=config["priors"]["parameters"],
        nlls=config["nlls"],
    log:
        "results/logs/evaluate_test_set/main.log",
    benchmark:
        "results/benchmarks/evaluate_test_set/main.tsv"
    conda:
        env("evaluate")
    threads: config["nlls"]["threads"]
    resources:
        mem_mb=4000,
        runtime=240,
    script:
        "../scripts/evaluate_test_set.py"


register_targets(
    [f"results/evaluate_grid/{g}.nc" for g in GRIDS] + ["results/evaluate_test_set/errors.nc"]
)
