# Shared helpers of the workflow: config validation, the target registry and input functions.
# Python helpers live here and in the four stage helpers beside their rules (train_common.smk,
# evaluate_common.smk, images_common.smk, manuscript_common.smk); rules stay declarative (no
# lambdas).  What they derive from the config is computed by crbnn.config.settings (imported as
# `derived`, tested there); the functions here only bind it to this workflow's config, TR and
# wildcards.

import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

from crbnn.config import settings as derived
from crbnn.config.checks import ConfigError
from crbnn.config.resources import RULE_MEM_MB, check_writable
from crbnn.config.checks import validate_config as check_and_resolve
from crbnn.data.inputs import INPUTS
from crbnn.common.logs import prepend_pythonpath

SCHEMA_DIR = Path(workflow.basedir) / "workflow" / "schemas"
ENVS = Path(workflow.basedir) / "envs"
SEQUENCE_TR = None  # set by validate_config

# Jobs in conda environments (envs/*.yaml hold third-party packages only) import crbnn from src/.
prepend_pythonpath(Path(workflow.basedir) / "src")


# ----------------------------------------------------------------------------- validation
def validate_config(config):
    """Validate the config against workflow/schemas (defaults filled in) and check its consistency.

    Runs at parse time, so no job starts with a bad config (crbnn.config.checks.validate_config).
    Sets SEQUENCE_TR, the pulse train's TR in s (sequence.tr, else the file's, else 3.5 ms for the
    public train).
    """
    global SEQUENCE_TR
    files = ", ".join(str(f) for f in workflow.configfiles) or "none"
    try:
        SEQUENCE_TR = check_and_resolve(config, SCHEMA_DIR, Path.cwd())
    except ConfigError as e:
        raise WorkflowError(
            f"invalid config at {e} (config files: {files}; `crbnn check-config <files>` checks them without Snakemake)"
        ) from None
    # a read-only results folder stops the workflow before any job
    try:
        check_writable(Path.cwd())
    except ConfigError as e:
        raise WorkflowError(str(e)) from None


# -------------------------------------------------------------------------- target registry
_TARGETS = []


def register_targets(paths):
    """Add final outputs of a stage to the default target (each stage file calls it after its rules)."""
    _TARGETS.extend(str(p) for p in paths)


def all_targets(wildcards=None):
    """Every registered target, in registration order, once (the input of the default target)."""
    return list(dict.fromkeys(_TARGETS))


# ----------------------------------------------------------------------------------- paths
def log_path(rule, name="main"):
    return f"results/logs/{rule}/{name}.log"


def benchmark_path(rule, name="main"):
    return f"results/benchmarks/{rule}/{name}.tsv"


def env(family):
    """Conda environment file of a rule family (simulate, train, evaluate, manuscript)."""
    return str(ENVS / f"{family}.yaml")


INPUT_NAMES = sorted(INPUTS)
INPUT_RE = "|".join(re.escape(n) for n in INPUT_NAMES)
SAMPLED_TABLES = derived.SAMPLED_TABLES
TABLE_RE = "|".join(SAMPLED_TABLES) + r"|grid_[A-Za-z0-9-]+"
EVALUATION_SETS = derived.EVALUATION_SETS
SET_RE = "|".join(EVALUATION_SETS)
VERDICT_SET = derived.VERDICT_SET


# ------------------------------------------------------------------------- input functions
def sequence_source(wildcards=None):
    """The pulse-train file build_sequence reads: the public control file or the user's file."""
    if config["sequence"]["source"] == "public":
        return "resources/inputs/control_MT_v3p2_TR3p5ms_discretized.mat"
    return config["sequence"]["file"]


def basis_source(wildcards=None):
    """The basis build_basis reads: the public file or the one computed by compute_basis."""
    if config["basis"]["source"] == "public":
        return "resources/inputs/basis_for_compress.mat"
    return "resources/compute_basis/basis.h5"


def n_shards(wildcards):
    """Number of simulate_shard jobs of table ``wildcards.name``."""
    return derived.n_shards(config, wildcards.name)


def table_size(wildcards):
    """Number of rows of sampled table ``wildcards.name``."""
    return derived.table_size(config, wildcards.name)


def table_seed(wildcards):
    """Seed of sampled table ``wildcards.name``, derived from simulate.seed and the name."""
    return derived.table_seed(config, wildcards.name)


def basis_seed(wildcards=None):
    return derived.basis_seed(config)


def shard_paths(wildcards):
    """The shard files merge_shards concatenates, in order."""
    return [
        f"results/simulate_dataset/{wildcards.name}/shard_{i}.h5"
        for i in range(n_shards(wildcards))
    ]


# Scheduling on few cores (longest work first).  The NLLS fits of the images need every core of their
# job (images.threads worker processes) and the in vivo one is the longest job of the run: they go first,
# before any other job takes a core.  Then the training chain (train and val tables -> crb network ->
# bias-reduced fine-tuning), the longest sequence of jobs; everything else fills the cores around them.
# Snakemake picks the set of ready jobs with the highest total priority that fits the free cores, so the
# image fits' priority is above that of any two training-chain jobs together.
TRAINING_CHAIN_PRIORITY = 10
IMAGE_FIT_PRIORITY = 50


def training_chain_priority(wildcards):
    """Priority of a simulate_shard / merge_shards job: the tables that training reads go first."""
    return TRAINING_CHAIN_PRIORITY if wildcards.name in ("train", "val") else 0


def known_tissue_values(wildcards=None):
    """Values of the tissue parameters the model holds known (crbnn.config.regime), from their fixed priors."""
    return derived.known_tissue_values(config)


def gpu_request(wildcards=None):
    """GPUs per GPU-capable job: compute.gpus unless the device is the CPU."""
    return derived.gpu_request(config)


def nlls_solver_settings():
    """The NLLS settings every fit uses: config['nlls'] without the grid-subset keys."""
    return derived.nlls_solver_settings(config)


def nlls_bounds(wildcards=None):
    """NLLS box bounds (SI) of every fit (grids, test set, SNR sweep, images): priors' support and nlls.bounds."""
    return derived.nlls_bounds(config, SEQUENCE_TR)


def nlls_model_meta(wildcards=None):
    """NLLS nominal values and bounds that train_network stores in the model file (meta["nlls"])."""
    return derived.nlls_model_meta(config, SEQUENCE_TR)
