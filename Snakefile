# CRB-informed training of networks for quantitative MRI (Zhang et al., MRM 2022): the workflow.
# Stages in pipeline order; each stage file registers its final outputs with register_targets().
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


validate_config(config)

STAGES = ["data", "simulate", "train", "evaluate", "figures", "images", "manuscript"]
for stage in STAGES:
    if Path(workflow.basedir, "workflow", "rules", f"{stage}.smk").exists():

        include: f"workflow/rules/{stage}.smk"


rule all:
    default_target: True
    input:
        all_targets,
