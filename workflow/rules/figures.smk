# Stage 5: figures and the summary table of the evaluation (crbnn.report.plots), each a report item with
# a caption in workflow/report/.  Plotting only: the numbers come from evaluate.smk's outputs.

MAP_QUANTITIES = "bias|bias_ratio|std_ratio|sqrt_crb"


rule plot_learning_curves:
    input:
        histories=[f"results/train_network/{n}/history.csv" for n in NETWORKS],
    output:
        png=report(
            "results/figures/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="Training",
        ),
        pdf="results/figures/learning_curves.pdf",
    log:
        "results/logs/plot_learning_curves/main.log",
    benchmark:
        "results/benchmarks/plot_learning_curves/main.tsv"
    conda:
        env("evaluate")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        networks=NETWORKS,
        init_from_crb=config["train"]["bias_reduced"]["init_from_crb"],
        dpi=config["figures"]["dpi"],
        font_scale=config["figures"]["font_scale"],
    script:
        "../scripts/plot_learning_curves.py"


rule plot_grid_maps:
    input:
        "results/evaluate_grid/{grid}.nc",
    output:
        png=report(
            "results/figures/grid_maps_{quantity}_{grid}.png",
            caption="../report/grid_maps.rst",
            category="Evaluation grids",
            subcategory="{grid}",
        ),
        pdf="results/figures/grid_maps_{quantity}_{grid}.pdf",
    log:
        "results/logs/plot_grid_maps/{quantity}_{grid}.log",
    benchmark:
        "results/benchmarks/plot_grid_maps/{quantity}_{grid}.tsv"
    wildcard_constraints:
        grid=GRID_RE,
        quantity=MAP_QUANTITIES,
    conda:
        env("evaluate")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        dpi=config["figures"]["dpi"],
        font_scale=config["figures"]["font_scale"],
        bias_percentile=config["figures"]["bias_percentile"],
        std_ratio_limit=config["figures"]["std_ratio_limit"],
    script:
        "../scripts/plot_grid_maps.py"


rule plot_error_distribution:
    input:
        "results/evaluate_test_set/errors.nc",
    output:
        png=report(
            "results/figures/error_distribution.png",
            caption="../report/error_distribution.rst",
            category="Test set",
        ),
        pdf="results/figures/error_distribution.pdf",
    log:
        "results/logs/plot_error_distribution/main.log",
    benchmark:
        "results/benchmarks/plot_error_distribution/main.tsv"
    conda:
        env("evaluate")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        dpi=config["figures"]["dpi"],
        font_scale=config["figures"]["font_scale"],
        error_limit=config["figures"]["error_limit"],
    script:
        "../scripts/plot_error_distribution.py"


rule summarize_evaluation:
    input:
        grids=[f"results/evaluate_grid/{g}.nc" for g in GRIDS],
        test="results/evaluate_test_set/errors.nc",
    output:
        csv=report(
            "results/figures/summary_table.csv",
            caption="../report/summary_table.rst",
            category="Summary",
        ),
        tex="results/figures/summary_table.tex",
    log:
        "results/logs/summarize_evaluation/main.log",
    benchmark:
        "results/benchmarks/summarize_evaluation/main.tsv"
    conda:
        env("evaluate")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        grids=GRIDS,
    script:
        "../scripts/summarize_evaluation.py"


rule plot_snr_sweep:
    input:
        f"results/evaluate_snr_sweep/{VERDICT_SET}/sweep.nc",
    output:
        png=report(
            "results/figures/snr_sweep.png",
            caption="../report/snr_sweep.rst",
            category="SNR sweep",
        ),
        pdf="results/figures/snr_sweep.pdf",
    log:
        "results/logs/plot_snr_sweep/main.log",
    benchmark:
        "results/benchmarks/plot_snr_sweep/main.tsv"
    conda:
        env("evaluate")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        dpi=config["figures"]["dpi"],
        font_scale=config["figures"]["font_scale"],
    script:
        "../scripts/plot_snr_sweep.py"


register_targets(
    [
        "results/figures/learning_curves.png",
        "results/figures/snr_sweep.png",
        "results/figures/error_distribution.png",
        "results/figures/summary_table.csv",
    ]
    + [
        f"results/figures/grid_maps_{q}_{g}.png"
        for q in MAP_QUANTITIES.split("|")
        for g in GRIDS
    ]
)
