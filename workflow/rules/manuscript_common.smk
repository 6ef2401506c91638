# Helpers of the manuscript stage (included by manuscript.smk): names of the inputs and the
# configuration values the manuscript quotes.  Kept apart from the rules (snakemake --lint).
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.settings.types import DeploymentMethod

from crbnn.report.manuscript import ManuscriptError, decide_pdf

MANUSCRIPT_LOSSES = list(config["train"]["losses"])
MANUSCRIPT_GRIDS = list(config["grids"]["sets"])
MANUSCRIPT_QUANTITIES = ["bias", "bias_ratio", "std_ratio", "sqrt_crb"]
# the phantoms of the images stage (their region tables; in vivo has its own table)
MANUSCRIPT_PHANTOMS = [
    i for i in config.get("images", {}).get("images", []) if i != "invivo"
]
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
    return derived.summary_config(config)


def invivo_regions_json(wildcards=None):
    """The in vivo region statistics (summary.json section invivo) when the images stage maps the
    in vivo slice with NLLS; nothing otherwise."""
    if derived.maps_invivo_with_nlls(config):
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
