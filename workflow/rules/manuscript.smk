# Stage 7: the headline numbers of the run (results/summary.json), their LaTeX macros and the
# manuscript PDF built from manuscript/ with latexmk or tectonic.  Whether the PDF is a target is
# decided at parse time (crbnn.report.manuscript.decide_pdf, manuscript_common.smk): with
# manuscript.enabled: auto and no engine, the PDF is left out and one warning line ends the run.
# write_macros and build_manuscript are local rules (on a cluster, TeX is on the submit host).
# Science in crbnn.evaluate.summary; every number in manuscript/manuscript.tex comes from numbers.tex.


include: "manuscript_common.smk"


rule summarize:
    input:
        evaluations=[
            f"results/evaluate_network/{VERDICT_SET}/{n}.json"
            for n in MANUSCRIPT_LOSSES
        ],
        dev_evaluations=[
            f"results/evaluate_network/dev/{n}.json" for n in MANUSCRIPT_LOSSES
        ],
        histories=[f"results/train_network/{n}/history.csv" for n in MANUSCRIPT_LOSSES],
        table="results/figures/summary_table.csv",
        sweep=f"results/evaluate_snr_sweep/{VERDICT_SET}/sweep.csv",
        sweep_nc=f"results/evaluate_snr_sweep/{VERDICT_SET}/sweep.nc",
        dev_sweep="results/evaluate_snr_sweep/dev/sweep.csv",
        replicate_sweeps=[
            f"results/evaluate_snr_sweep/{VERDICT_SET}/seed{s}/sweep.nc"
            for s in REPLICATES
        ],
        regimes="results/compare_regimes/sqrt_crb.json",
        grids=[f"results/evaluate_grid/{g}.nc" for g in MANUSCRIPT_GRIDS],
        sequence="resources/sequence.h5",
        invivo_regions=invivo_regions_json,
    output:
        summary="results/summary.json",
    log:
        "results/logs/summarize/main.log",
    benchmark:
        "results/benchmarks/summarize/main.tsv"
    conda:
        env("evaluate")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        losses=MANUSCRIPT_LOSSES,
        grids=MANUSCRIPT_GRIDS,
        config=summary_config,
        invivo_seed=derived.tissue_settings(config)["bootstrap_seed"],
    script:
        "../scripts/summarize_results.py"


rule write_macros:
    input:
        summary="results/summary.json",
        networks=[f"results/train_network/{n}/network.json" for n in MANUSCRIPT_LOSSES],
        phantom_regions=[
            f"results/images/{i}/regions.json" for i in MANUSCRIPT_PHANTOMS
        ],
    output:
        numbers="results/manuscript/numbers.tex",
        grid_figures="results/manuscript/grid_figures.tex",
        priors="results/manuscript/priors.tex",
        regions="results/manuscript/invivo_regions.tex",
        snr_table="results/manuscript/snr_table.tex",
        claims="results/manuscript/claims.tex",
        phantom_tables="results/manuscript/phantom_tables.tex",
    log:
        "results/logs/write_macros/main.log",
    benchmark:
        "results/benchmarks/write_macros/main.tsv"
    localrule: True
    conda:
        env("manuscript")
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        title=config["manuscript"]["title"],
        authors=config["manuscript"]["authors"],
        digits=config["manuscript"]["digits"],
        grids=MANUSCRIPT_GRIDS,
        quantities=MANUSCRIPT_QUANTITIES,
        losses=MANUSCRIPT_LOSSES,
        phantoms=MANUSCRIPT_PHANTOMS,
    script:
        "../scripts/write_macros.py"


rule build_manuscript:
    input:
        tex=str(MANUSCRIPT_SOURCES / "manuscript.tex"),
        bib=str(MANUSCRIPT_SOURCES / "references.bib"),
        numbers="results/manuscript/numbers.tex",
        grid_figures="results/manuscript/grid_figures.tex",
        priors="results/manuscript/priors.tex",
        regions="results/manuscript/invivo_regions.tex",
        snr_table="results/manuscript/snr_table.tex",
        claims="results/manuscript/claims.tex",
        phantom_tables="results/manuscript/phantom_tables.tex",
        table="results/figures/summary_table.tex",
        figures=manuscript_figures,
    output:
        pdf=report(
            "results/manuscript/manuscript.pdf",
            caption="../report/manuscript.rst",
            category="Manuscript",
        ),
    log:
        "results/logs/build_manuscript/main.log",
    benchmark:
        "results/benchmarks/build_manuscript/main.tsv"
    localrule: True
    conda:
        env("manuscript")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        engine=config["manuscript"]["engine"],
        build_dir="results/manuscript/build",
    script:
        "../scripts/build_manuscript.py"


register_targets(["results/summary.json"])
if MANUSCRIPT_PDF.build:
    register_targets(["results/manuscript/manuscript.pdf"])


onsuccess:
    warn_pdf_skipped()
