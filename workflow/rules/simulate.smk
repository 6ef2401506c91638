# Stage 2: parameter tables sampled from the priors, and their simulation in shards
# (noise-free subspace coefficients, Jacobians and CRBs at M0 = 1, sigma = 1).
# simulate_shard and merge_shards are generic in <name>: they also simulate the evaluation grids
# (results/sample_parameters/grid_<grid>.h5, written by build_grid).


rule sample_parameters:
    input:
        sequence="resources/sequence.h5",
    output:
        "results/sample_parameters/{name}.h5",
    log:
        "results/logs/sample_parameters/{name}.log",
    benchmark:
        "results/benchmarks/sample_parameters/{name}.tsv"
    wildcard_constraints:
        name="|".join(SAMPLED_TABLES),
    conda:
        env("simulate")
    threads: 1
    resources:
        mem_mb=RULE_MEM_MB["sample_parameters"],
        runtime=30,
    params:
        priors=config["priors"],
        n=table_size,
        seed=table_seed,
    script:
        "../scripts/sample_parameters.py"


rule simulate_shard:
    input:
        table="results/sample_parameters/{name}.h5",
        sequence="resources/sequence.h5",
        basis="resources/basis.h5",
        r2sl="resources/r2sl.h5",
    output:
        "results/simulate_dataset/{name}/shard_{shard}.h5",
    log:
        "results/logs/simulate_shard/{name}/shard_{shard}.log",
    benchmark:
        "results/benchmarks/simulate_shard/{name}/shard_{shard}.tsv"
    wildcard_constraints:
        name=TABLE_RE,
        shard=r"\d+",
    priority: training_chain_priority
    conda:
        env("simulate")
    threads: config["compute"]["simulate_threads"]
    resources:
        mem_mb=config["compute"]["mem_mb"],
        runtime=240,
        gpu=gpu_request,
    params:
        n_shards=n_shards,
        estimated=config["model"]["estimated"],
        nuisance=config["model"]["nuisance"],
        batch_size=config["simulate"]["batch_size"],
        device=config["compute"]["device"],
    script:
        "../scripts/simulate_shard.py"


rule merge_shards:
    input:
        shard_paths,
    output:
        "results/simulate_dataset/{name}.h5",
    log:
        "results/logs/merge_shards/{name}.log",
    benchmark:
        "results/benchmarks/merge_shards/{name}.tsv"
    wildcard_constraints:
        name=TABLE_RE,
    priority: training_chain_priority
    conda:
        env("simulate")
    threads: 1
    resources:
        mem_mb=RULE_MEM_MB["merge_shards"],
        runtime=60,
    script:
        "../scripts/merge_shards.py"


register_targets([f"results/simulate_dataset/{name}.h5" for name in SAMPLED_TABLES])
