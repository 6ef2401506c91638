# Stage 1: verified public inputs and the project's resources (pulse train, basis, R2sl table,
# in vivo image), converted once into the documented formats of docs/architecture.md.


localrules:
    fetch_inputs,


# The source of an input (inputs.data_dir, inputs.mirror_url or $CRBNN_MIRROR_URL, the pinned URL)
# is read by the script from the config, not passed as params: the file is the same whatever its
# source (sha256-checked), so switching sources must not rerun the workflow (params are provenance).
rule fetch_inputs:
    output:
        "resources/inputs/{file}",
    log:
        "results/logs/fetch_inputs/{file}.log",
    benchmark:
        "results/benchmarks/fetch_inputs/{file}.tsv"
    wildcard_constraints:
        file=INPUT_RE,
    conda:
        env("simulate")
    threads: 1
    resources:
        mem_mb=500,
        runtime=30,
    script:
        "../scripts/fetch_inputs.py"


rule build_sequence:
    input:
        source=sequence_source(),
    output:
        "resources/sequence.h5",
    log:
        log_path("build_sequence"),
    benchmark:
        benchmark_path("build_sequence")
    conda:
        env("simulate")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        tr=SEQUENCE_TR,
        r2sl=config["r2sl"],
    script:
        "../scripts/build_sequence.py"


rule build_r2sl_table:
    output:
        "resources/r2sl.h5",
    log:
        log_path("build_r2sl_table"),
    benchmark:
        benchmark_path("build_r2sl_table")
    conda:
        env("simulate")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        grid=config["r2sl"],
    script:
        "../scripts/build_r2sl_table.py"


rule compute_basis:
    input:
        sequence="resources/sequence.h5",
        r2sl="resources/r2sl.h5",
    output:
        "resources/compute_basis/basis.h5",
    log:
        log_path("compute_basis"),
    benchmark:
        benchmark_path("compute_basis")
    conda:
        env("simulate")
    threads: config["compute"]["simulate_threads"]
    resources:
        mem_mb=config["compute"]["mem_mb"],
        runtime=240,
        gpu=gpu_request,
    params:
        priors=config["priors"],
        rank=config["basis"]["rank"],
        n=config["basis"]["dictionary_size"],
        batch_size=config["basis"]["batch_size"],
        seed=basis_seed(),
        device=config["compute"]["device"],
    script:
        "../scripts/compute_basis.py"


rule build_basis:
    input:
        source=basis_source(),
        sequence="resources/sequence.h5",
    output:
        "resources/basis.h5",
    log:
        log_path("build_basis"),
    benchmark:
        benchmark_path("build_basis")
    conda:
        env("simulate")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        rank=config["basis"]["rank"],
        source=config["basis"]["source"],
    script:
        "../scripts/build_basis.py"


rule build_invivo_image:
    input:
        "resources/inputs/invivo_test_slice.mat",
    output:
        coefficients="resources/invivo/coefficients.nii.gz",
        mask="resources/invivo/mask.nii.gz",
    log:
        log_path("build_invivo_image"),
    benchmark:
        benchmark_path("build_invivo_image")
    conda:
        env("simulate")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        voxel_size=config["inputs"]["invivo_voxel_size"],
    script:
        "../scripts/build_invivo_image.py"


register_targets(
    [
        "resources/sequence.h5",
        "resources/basis.h5",
        "resources/r2sl.h5",
        "resources/invivo/coefficients.nii.gz",
        "resources/invivo/mask.nii.gz",
    ]
)
