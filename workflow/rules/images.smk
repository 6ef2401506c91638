# Stage: numerical phantoms and parameter maps of images (phantoms and the in vivo slice) per
# estimator: NLLS (crbnn.estimate.nlls) and every trained network, with sqrt(CRB) and residual maps,
# region statistics and map figures.  Science in crbnn.images.phantom and crbnn.images.maps; settings in
# workflow/schemas/phantom.schema.yaml and images.schema.yaml.


include: "images_common.smk"


rule build_phantom:
    input:
        sequence="resources/sequence.h5",
        basis="resources/basis.h5",
        r2sl="resources/r2sl.h5",
    output:
        coefficients="results/build_phantom/{phantom}/coefficients.nii.gz",
        coefficients_noisefree="results/build_phantom/{phantom}/coefficients_noisefree.nii.gz",
        mask="results/build_phantom/{phantom}/mask.nii.gz",
        labels="results/build_phantom/{phantom}/labels.nii.gz",
        truth=expand("results/build_phantom/{{phantom}}/truth/{p}.nii.gz", p=TRUTH_MAPS),
        regions="results/build_phantom/{phantom}/regions.json",
    log:
        "results/logs/build_phantom/{phantom}.log",
    benchmark:
        "results/benchmarks/build_phantom/{phantom}.tsv"
    wildcard_constraints:
        phantom=PHANTOM_RE,
    conda:
        env("evaluate")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        settings=config["phantom"],
        known=known_tissue_values,
    script:
        "../scripts/build_phantom.py"


rule fit_image_nlls:
    input:
        unpack(image_inputs),
        sequence="resources/sequence.h5",
        basis="resources/basis.h5",
        r2sl="resources/r2sl.h5",
    output:
        maps=expand("results/images/{{image}}/nlls/{map}.nii.gz", map=NLLS_MAPS),
        info="results/images/{image}/nlls/info.json",
    log:
        "results/logs/fit_image_nlls/{image}.log",
    benchmark:
        "results/benchmarks/fit_image_nlls/{image}.tsv"
    wildcard_constraints:
        image=IMAGE_RE,
    priority: IMAGE_FIT_PRIORITY
    conda:
        env("evaluate")
    threads: config["images"]["threads"]
    resources:
        mem_mb=config["compute"]["mem_mb"],
        runtime=24 * 60,
        gpu=gpu_request,
    params:
        nlls=nlls_solver_settings(),
        bounds=nlls_bounds,
        voxels=image_voxels,
        device=config["compute"]["device"],
    script:
        "../scripts/fit_image_nlls.py"


rule infer_image:
    input:
        unpack(image_inputs),
        model="results/train_network/{network}/model.pt",
        nlls=expand("results/images/{{image}}/nlls/{map}.nii.gz", map=NLLS_MAPS),
        nlls_info="results/images/{image}/nlls/info.json",
        sequence="resources/sequence.h5",
        basis="resources/basis.h5",
        r2sl="resources/r2sl.h5",
    output:
        maps=expand(
            "results/images/{{image}}/{{network}}/{map}.nii.gz", map=NETWORK_MAPS
        ),
        info="results/images/{image}/{network}/info.json",
    log:
        "results/logs/infer_image/{image}_{network}.log",
    benchmark:
        "results/benchmarks/infer_image/{image}_{network}.tsv"
    wildcard_constraints:
        image=IMAGE_RE,
        network="mse|crb|bias_reduced",
    conda:
        env("evaluate")
    threads: 1  # one torch thread: the physics of the maps scales with jobs, not threads (worker_processes)
    resources:
        gpu=gpu_request,
        mem_mb=config["compute"]["mem_mb"],
        runtime=120,
    params:
        nominal=config["nlls"]["nominal"],
        fit=config["nlls"]["fit"],
        bounds=nlls_bounds,
        batch_size=config["images"]["batch_size"],
        device=config["compute"]["device"],
    script:
        "../scripts/infer_image.py"


rule summarize_image_regions:
    input:
        unpack(image_inputs),
        unpack(image_truth),
        maps=estimator_maps,
    output:
        csv="results/images/{image}/regions.csv",
        json="results/images/{image}/regions.json",
    log:
        "results/logs/summarize_image_regions/{image}.log",
    benchmark:
        "results/benchmarks/summarize_image_regions/{image}.tsv"
    wildcard_constraints:
        image=IMAGE_RE,
    conda:
        env("evaluate")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        estimators=IMAGE_ESTIMATORS,
        boxes=config["images"]["regions"],
        tissue=derived.tissue_settings(config),
        percentiles=config["images"]["percentiles"],
    script:
        "../scripts/summarize_image_regions.py"


rule plot_maps:
    input:
        unpack(image_inputs),
        unpack(image_truth),
        maps=estimator_maps,
    output:
        maps=report(
            multiext("results/figures/maps_{image}", ".png", ".pdf"),
            caption="../report/maps.rst",
            category="Images",
        ),
        residual=report(
            multiext("results/figures/maps_{image}_residual", ".png", ".pdf"),
            caption="../report/maps_residual.rst",
            category="Images",
        ),
    log:
        "results/logs/plot_maps/{image}.log",
    benchmark:
        "results/benchmarks/plot_maps/{image}.tsv"
    wildcard_constraints:
        image=IMAGE_RE,
    conda:
        env("evaluate")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        estimators=IMAGE_ESTIMATORS,
        tissue=derived.tissue_settings(config),
        dpi=config["figures"]["dpi"],
        font_scale=config["figures"]["font_scale"],
    script:
        "../scripts/plot_maps.py"


register_targets(
    [f"results/images/{i}/regions.json" for i in config["images"]["images"]]
    + [f"results/figures/maps_{i}.png" for i in config["images"]["images"]]
    + [f"results/figures/maps_{i}_residual.png" for i in config["images"]["images"]]
)
