# Stage 7: the headline numbers of the run (results/summary.json), their LaTeX macros and the
# manuscript PDF built with latexmk from manuscript/ (manuscript.enabled: false skips the PDF).
# Science in crbnn.summary; every number in manuscript/manuscript.tex comes from numbers.tex.
import math
from pathlib import Path


MANUSCRIPT_LOSSES = list(config["train"]["losses"])
MANUSCRIPT_GRIDS = list(config["grids"]["sets"])
MANUSCRIPT_QUANTITIES = ["bias", "std_ratio", "sqrt_crb"]
MANUSCRIPT_SOURCES = Path(workflow.basedir) / "manuscript"  # the LaTeX sources in the checkout


def summary_config(wildcards=None):
    """The configuration values that the manuscript quotes (results/summary.json, section config)."""
    tables = config["simulate"]["tables"]
    return {
        "sequence_source": config["sequence"]["source"],
        "basis_source": config["basis"]["source"],
        "rank": config["basis"]["rank"],
        "n_train": tables["train"]["n"],
        "n_val": tables["val"]["n"],
        "n_test": tables["test"]["n"],
        "estimated": config["model"]["estimated"],
        "nuisance": config["model"]["nuisance"],
        "losses": MANUSCRIPT_LOSSES,
        "train_sigma": config["train"]["noise"]["sigma"],
        "train_m0_min": config["train"]["noise"]["m0_min"],
        "train_m0_max": config["train"]["noise"]["m0_max"],
        "network": config["train"]["network"].get("preset", "custom"),
        "epochs": config["train"]["optimizer"]["epochs"],
        "batch_size": config["train"]["optimizer"]["batch_size"],
        "lr": config["train"]["optimizer"]["lr"],
        "sigma": config["evaluate"]["sigma"],
        "M0_abs": config["evaluate"]["M0_abs"],
        "grids": {
            g: {
                "points": math.prod(a["num"] for a in s["axes"].values()),
                "realizations": s["realizations"],
            }
            for g, s in config["grids"]["sets"].items()
        },
        "nlls_grid_realizations": config["nlls"]["grid_realizations"],
        "priors": config["priors"]["parameters"],
    }


def manuscript_figures(wildcards=None):
    """The figure PDFs the manuscript includes (all workflow outputs)."""
    figs = ["results/figures/learning_curves.pdf", "results/figures/error_distribution.pdf"]
    figs += [
        f"results/figures/grid_maps_{q}_{g}.pdf"
        for g in MANUSCRIPT_GRIDS
        for q in MANUSCRIPT_QUANTITIES
    ]
    return figs


rule summarize:
    input:
        evaluations=[f"results/evaluate_network/{n}.json" for n in MANUSCRIPT_LOSSES],
        histories=[f"results/train_network/{n}/history.csv" for n in MANUSCRIPT_LOSSES],
        table="results/figures/summary_table.csv",
        sequence="resources/sequence.h5",
    output:
        "results/summary.json",
    params:
        losses=MANUSCRIPT_LOSSES,
        config=summary_config,
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
    script:
        "../scripts/summarize_results.py"


rule write_macros:
    input:
        "results/summary.json",
    output:
        numbers="results/manuscript/numbers.tex",
        grid_figures="results/manuscript/grid_figures.tex",
        priors="results/manuscript/priors.tex",
    params:
        title=config["manuscript"]["title"],
        authors=config["manuscript"]["authors"],
        digits=config["manuscript"]["digits"],
        grids=MANUSCRIPT_GRIDS,
        quantities=MANUSCRIPT_QUANTITIES,
    log:
        "results/logs/write_macros/main.log",
    benchmark:
        "results/benchmarks/write_macros/main.tsv"
    conda:
        env("manuscript")
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/write_macros.py"


rule build_manuscript:
    input:
        tex=str(MANUSCRIPT_SOURCES / "manuscript.tex"),
        bib=str(MANUSCRIPT_SOURCES / "references.bib"),
        numbers="results/manuscript/numbers.tex",
        grid_figures="results/manuscript/grid_figures.tex",
        priors="results/manuscript/priors.tex",
        table="results/figures/summary_table.tex",
        figures=manuscript_figures,
    output:
        report(
            "results/manuscript/manuscript.pdf",
            caption="../report/manuscript.rst",
            category="Manuscript",
        ),
    params:
        engine=config["manuscript"]["engine"],
        build_dir="results/manuscript/build",
    log:
        "results/logs/build_manuscript/main.log",
    benchmark:
        "results/benchmarks/build_manuscript/main.tsv"
    conda:
        env("manuscript")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/build_manuscript.py"


register_targets(["results/summary.json"])
if config["manuscript"]["enabled"]:
    register_targets(["results/manuscript/manuscript.pdf"])
