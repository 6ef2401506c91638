# Helpers of the images stage (included by images.smk): names of estimators and maps, and the
# input/params functions of its rules.  Kept apart from the rules (snakemake --lint).

from crbnn.common.parameters import TISSUE_PARAMETERS

IMAGE_NETWORKS = derived.image_networks(config)
IMAGE_ESTIMATORS = ["nlls", *IMAGE_NETWORKS]
ESTIMATE_MAPS = list(config["model"]["estimated"])
UNCERTAINTY_MAPS = [f"sqrt_crb_{p}" for p in ESTIMATE_MAPS] + ["residual"]
NLLS_MAPS = [*config["nlls"]["fit"], "M0_abs", "M0_phase", *UNCERTAINTY_MAPS]
NETWORK_MAPS = [*ESTIMATE_MAPS, *UNCERTAINTY_MAPS]
TRUTH_MAPS = [*TISSUE_PARAMETERS, "M0_abs", "M0_phase"]
PHANTOM_RE = "|".join(config["phantom"]["kinds"]) or "none"
IMAGE_RE = "|".join(config["images"]["images"]) or "none"


def image_inputs(wildcards):
    """Coefficient image and mask of ``wildcards.image`` (the in vivo slice or a phantom)."""
    if wildcards.image == "invivo":
        root = "resources/invivo"
    else:
        root = f"results/build_phantom/{wildcards.image}"
    return {
        "coefficients": f"{root}/coefficients.nii.gz",
        "mask": f"{root}/mask.nii.gz",
    }


def image_voxels(wildcards):
    """Voxel subsampling of the per-voxel physics (NLLS, sqrt(CRB), residual) of an image."""
    return derived.image_voxels(config, wildcards.image)


def image_truth(wildcards):
    """Ground truth of a phantom image (nothing for in vivo)."""
    if wildcards.image == "invivo":
        return {}
    root = f"results/build_phantom/{wildcards.image}"
    return {
        "truth": [f"{root}/truth/{p}.nii.gz" for p in ESTIMATE_MAPS],
        "labels": f"{root}/labels.nii.gz",
        "regions": f"{root}/regions.json",
    }


def estimator_maps(wildcards):
    """Estimate maps of every estimator of an image (inputs of statistics and figures)."""
    return [
        f"results/images/{wildcards.image}/{e}/{m}.nii.gz"
        for e in IMAGE_ESTIMATORS
        for m in NETWORK_MAPS
    ]
