# CRB-informed training of networks for quantitative MRI (Zhang et al., MRM 2022): the workflow.
# Stages in pipeline order; each stage file registers its final outputs with register_targets().
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


validate_config(config)


include: "workflow/rules/data.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/images.smk"
include: "workflow/rules/manuscript.smk"


rule all:
    default_target: True
    input:
        all_targets,
