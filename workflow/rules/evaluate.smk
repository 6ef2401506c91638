# Stage 4: evaluation of the estimators (NLLS reference and trained networks) on the test grids and
# the test set.  build_grid writes results/sample_parameters/grid_<grid>.h5, which the generic
# simulate rules turn into results/simulate_dataset/grid_<grid>.h5; NLLS fits run in their own
# cached rule (fit_nlls_grid) so that retraining a network does not refit.  Science in
# crbnn.data.test_grids, crbnn.estimate.nlls and crbnn.evaluate.grid; settings in workflow/schemas/{grids,evaluate,nlls}.schema.yaml.


include: "evaluate_common.smk"


rule build_grid:
    output:
        "results/sample_parameters/grid_{grid}.h5",
    log:
        "results/logs/build_grid/{grid}.log",
    benchmark:
        "results/benchmarks/build_grid/{grid}.tsv"
    wildcard_constraints:
        grid=GRID_RE,
    conda:
        env("evaluate")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        name="{grid}",
        axes=lookup(dpath="grids/sets/{grid}/axes", within=config),
        fixed=config["grids"]["fixed"],
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
    log:
        "results/logs/fit_nlls_grid/{grid}.log",
    benchmark:
        "results/benchmarks/fit_nlls_grid/{grid}.tsv"
    wildcard_constraints:
        grid=GRID_RE,
    conda:
        env("evaluate")
    threads: config["nlls"]["threads"]
    resources:
        mem_mb=4000,
        gpu=gpu_request,
        runtime=240,
    params:
        realizations=lookup(dpath="grids/sets/{grid}/realizations", within=config),
        M0_abs=config["evaluate"]["M0_abs"],
        sigma=config["evaluate"]["sigma"],
        random_phase=config["evaluate"]["random_phase"],
        seed=grid_seed,
        nlls=config["nlls"],
        bounds=nlls_bounds,
        device=config["compute"]["device"],
    script:
        "../scripts/fit_nlls_grid.py"


rule evaluate_grid:
    input:
        unpack(grid_inputs),
    output:
        "results/evaluate_grid/{grid}.nc",
    log:
        "results/logs/evaluate_grid/{grid}.log",
    benchmark:
        "results/benchmarks/evaluate_grid/{grid}.tsv"
    wildcard_constraints:
        grid=GRID_RE,
    conda:
        env("evaluate")
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        estimators=ESTIMATORS,
        networks=NETWORKS,
        realizations=lookup(dpath="grids/sets/{grid}/realizations", within=config),
        M0_abs=config["evaluate"]["M0_abs"],
        sigma=config["evaluate"]["sigma"],
        random_phase=config["evaluate"]["random_phase"],
        seed=grid_seed,
        batch_size=config["evaluate"]["batch_size"],
    script:
        "../scripts/evaluate_grid.py"


rule evaluate_test_set:
    input:
        test=f"results/simulate_dataset/{VERDICT_SET}.h5",
        models=[f"results/train_network/{n}/model.pt" for n in NETWORKS],
        sequence="resources/sequence.h5",
        basis="resources/basis.h5",
        r2sl="resources/r2sl.h5",
    output:
        "results/evaluate_test_set/errors.nc",
    log:
        "results/logs/evaluate_test_set/main.log",
    benchmark:
        "results/benchmarks/evaluate_test_set/main.tsv"
    conda:
        env("evaluate")
    threads: config["nlls"]["threads"]
    resources:
        mem_mb=4000,
        gpu=gpu_request,
        runtime=240,
    params:
        estimators=ESTIMATORS,
        networks=NETWORKS,
        samples=config["evaluate"]["test_set"]["samples"],
        nlls_samples=config["evaluate"]["test_set"]["nlls_samples"],
        m0_range=config["evaluate"]["test_set"]["m0_range"],
        sigma=config["evaluate"]["sigma"],
        seed=derived.evaluation_seed(config, "test_set"),
        batch_size=config["evaluate"]["batch_size"],
        nlls=nlls_solver_settings(),
        bounds=nlls_bounds,
        device=config["compute"]["device"],
    script:
        "../scripts/evaluate_test_set.py"


rule compare_regimes:
    input:
        sequence="resources/sequence.h5",
        basis="resources/basis.h5",
        r2sl="resources/r2sl.h5",
    output:
        "results/compare_regimes/sqrt_crb.json",
    log:
        "results/logs/compare_regimes/main.log",
    benchmark:
        "results/benchmarks/compare_regimes/main.tsv"
    conda:
        env("evaluate")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        fixed=config["grids"]["fixed"],
        estimated=config["model"]["estimated"],
        nuisance=config["model"]["nuisance"],
        M0_abs=config["evaluate"]["M0_abs"],
        sigma=config["evaluate"]["sigma"],
    script:
        "../scripts/compare_regimes.py"


rule evaluate_snr_sweep:
    input:
        test="results/simulate_dataset/{set}.h5",
        models=[f"results/train_network/{n}/model.pt" for n in NETWORKS],
        sequence="resources/sequence.h5",
        basis="resources/basis.h5",
        r2sl="resources/r2sl.h5",
    output:
        nc="results/evaluate_snr_sweep/{set}/sweep.nc",
        csv="results/evaluate_snr_sweep/{set}/sweep.csv",
    log:
        "results/logs/evaluate_snr_sweep/{set}.log",
    benchmark:
        "results/benchmarks/evaluate_snr_sweep/{set}.tsv"
    wildcard_constraints:
        set=SET_RE,
    conda:
        env("evaluate")
    threads: config["nlls"]["threads"]
    resources:
        mem_mb=4000,
        gpu=gpu_request,
        runtime=240,
    params:
        estimators=ESTIMATORS,
        networks=NETWORKS,
        sweep=config["evaluate"]["snr_sweep"],
        sigma=config["evaluate"]["sigma"],
        seed=sweep_seed,
        batch_size=config["evaluate"]["batch_size"],
        nlls=nlls_solver_settings(),
        bounds=nlls_bounds,
        device=config["compute"]["device"],
    script:
        "../scripts/evaluate_snr_sweep.py"


# The networks of a further training seed on the final test set's sweep, with the same noise.
use rule evaluate_snr_sweep as evaluate_replicate_sweep with:
    input:
        test=f"results/simulate_dataset/{VERDICT_SET}.h5",
        models=[f"results/train_replicates/seed{{seed}}/{n}/model.pt" for n in NETWORKS],
        sequence="resources/sequence.h5",
        basis="resources/basis.h5",
        r2sl="resources/r2sl.h5",
    output:
        nc=f"results/evaluate_snr_sweep/{VERDICT_SET}/seed{{seed}}/sweep.nc",
        csv=f"results/evaluate_snr_sweep/{VERDICT_SET}/seed{{seed}}/sweep.csv",
    log:
        "results/logs/evaluate_replicate_sweep/seed{seed}.log",
    benchmark:
        "results/benchmarks/evaluate_replicate_sweep/seed{seed}.tsv"
    wildcard_constraints:
        seed=r"\d+",
    params:
        estimators=NETWORKS,
        seed=derived.sweep_seed(config, VERDICT_SET),


register_targets(
    [f"results/evaluate_grid/{g}.nc" for g in GRIDS]
    + ["results/evaluate_test_set/errors.nc"]
    + [f"results/evaluate_snr_sweep/{s}/sweep.csv" for s in EVALUATION_SETS]
    + [f"results/evaluate_snr_sweep/{VERDICT_SET}/seed{s}/sweep.nc" for s in REPLICATES]
)
