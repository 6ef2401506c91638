# Stage 3: one network per configured loss (train.losses), trained on the simulated data sets with
# noise drawn on the fly, and its metrics on the test set.  Science in crbnn.learn.loop; see
# workflow/schemas/train.schema.yaml for every setting.  Checkpoints go to the undeclared folder
# results/train_network/<loss>/checkpoints/ so that a killed job resumes where it stopped.


include: "train_common.smk"


rule train_network:
    input:
        unpack(train_init),
        train="results/simulate_dataset/train.h5",
        val="results/simulate_dataset/val.h5",
    output:
        model="results/train_network/{loss}/model.pt",
        history="results/train_network/{loss}/history.csv",
        network="results/train_network/{loss}/network.json",
    log:
        "results/logs/train_network/{loss}.log",
    benchmark:
        "results/benchmarks/train_network/{loss}.tsv"
    wildcard_constraints:
        loss=TRAIN_LOSSES,
    priority: TRAINING_CHAIN_PRIORITY
    conda:
        env("train")
    threads: config["train"]["threads"]
    resources:
        gpu=gpu_request,
        mem_mb=config["train"]["mem_mb"],
        runtime=24 * 60,
    params:
        settings=train_settings,
        nlls=nlls_model_meta,
        device=config["compute"]["device"],
    script:
        "../scripts/train_network.py"


# The same network trained with a further seed (train.seed_replicates; the spread over training seeds).
use rule train_network as train_replicate with:
    input:
        unpack(replicate_init),
        train="results/simulate_dataset/train.h5",
        val="results/simulate_dataset/val.h5",
    output:
        model="results/train_replicates/seed{seed}/{loss}/model.pt",
        history="results/train_replicates/seed{seed}/{loss}/history.csv",
        network="results/train_replicates/seed{seed}/{loss}/network.json",
    log:
        "results/logs/train_replicate/seed{seed}/{loss}.log",
    benchmark:
        "results/benchmarks/train_replicate/seed{seed}/{loss}.tsv"
    wildcard_constraints:
        loss=TRAIN_LOSSES,
        seed=r"\d+",
    params:
        settings=replicate_settings,


rule evaluate_network:
    input:
        model="results/train_network/{loss}/model.pt",
        test="results/simulate_dataset/{set}.h5",
    output:
        metrics="results/evaluate_network/{set}/{loss}.json",
    log:
        "results/logs/evaluate_network/{set}/{loss}.log",
    benchmark:
        "results/benchmarks/evaluate_network/{set}/{loss}.tsv"
    wildcard_constraints:
        loss=TRAIN_LOSSES,
        set=SET_RE,
    conda:
        env("train")
    threads: config["train"]["threads"]
    resources:
        gpu=gpu_request,
        mem_mb=config["train"]["mem_mb"],
        runtime=60,
    params:
        realizations=config["train"]["test"]["realizations"],
        seed=config["train"]["test"]["seed"],
        device=config["compute"]["device"],
    script:
        "../scripts/evaluate_network.py"


register_targets(
    [f"results/train_network/{loss}/model.pt" for loss in config["train"]["losses"]]
    + [
        f"results/evaluate_network/{s}/{loss}.json"
        for s in EVALUATION_SETS
        for loss in config["train"]["losses"]
    ]
)
