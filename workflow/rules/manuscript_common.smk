# Helpers of the manuscript stage (included by manuscript.smk): names of the inputs and the
# configuration values the manuscript quotes.  Kept apart from the rules (snakemake --lint).
import math
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.settings.types import DeploymentMethod

from crbnn.report.manuscript import ManuscriptError, decide_pdf
from crbnn.config.regime import regime_description
from crbnn.evaluate.snr_sweep import INTERVAL_PERCENT

MANUSCRIPT_LOSSES = list(config["train"]["losses"])
MANUSCRIPT_GRIDS = list(config["grids"]["sets"])
MANUSCRIPT_QUANTITIES = ["bias", "std_ratio", "sqrt_crb"]
# the LaTeX sources in the checkout
MANUSCRIPT_SOURCES = Path(workflow.basedir) / "manuscript"

# Is the PDF a target?  Decided once at parse time (manuscript.enabled: auto | true | false).
# (with --sdm conda, envs/manuscript.yaml provides tectonic)
USES_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
try:
    MANUSCRIPT_PDF = decide_pdf(
        config["manuscript"]["enabled"], config["manuscript"]["engine"], USES_CONDA
    )
except ManuscriptError as err:
    raise WorkflowError(str(err)) from None


def warn_pdf_skipped(log=None):
    """The one warning line of a run whose PDF was skipped (onsuccess, main process only)."""
    if MANUSCRIPT_PDF.warning and workflow.is_main_process:
        logger.warning(f"WARNING: {MANUSCRIPT_PDF.warning}")


def summary_config(wildcards=None):
    """The configuration values that the manuscript quotes (results/summary.json, section config)."""
    tables = config["simulate"]["tables"]
    known = known_tissue_values()
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
        "test_realizations": config["train"]["test"]["realizations"],
        "priors": config["priors"]["parameters"],
        "known": known,
        "regime": regime_description(
            config["model"]["estimated"],
            config["model"]["nuisance"],
            known,
        ),
        "ema_decay": config["train"]["optimizer"]["ema_decay"],
        "snr_sweep_snrs": config["evaluate"]["snr_sweep"]["snrs"],
        "snr_sweep_realizations": config["evaluate"]["snr_sweep"]["realizations"],
        "snr_sweep_nlls_samples": config["evaluate"]["snr_sweep"]["nlls_samples"],
        "snr_sweep_nlls_realizations": config["evaluate"]["snr_sweep"][
            "nlls_realizations"
        ],
        "snr_sweep_interval_percent": INTERVAL_PERCENT,
    }


def invivo_regions_json(wildcards=None):
    """The in vivo region statistics (summary.json section invivo) when the images stage maps the
    in vivo slice with NLLS; nothing otherwise."""
    images = config.get("images", {})
    if "invivo" in images.get("images", []) and "nlls" in images.get("estimators", []):
        return ["results/images/invivo/regions.json"]
    return []


def manuscript_figures(wildcards=None):
    """The figure PDFs the manuscript includes (all workflow outputs)."""
    figs = [
        "results/figures/learning_curves.pdf",
        "results/figures/error_distribution.pdf",
        "results/figures/snr_sweep.pdf",
    ]
    figs += [
        f"results/figures/grid_maps_{q}_{g}.pdf"
        for g in MANUSCRIPT_GRIDS
        for q in MANUSCRIPT_QUANTITIES
    ]
    # parameter maps of the images stage (phantoms, in vivo), included when present
    figs += [
        f"results/figures/maps_{image}.pdf"
        for image in config.get("images", {}).get("images", [])
    ]
    return figs
