# Shared helpers of the workflow: config validation, the target registry and input functions.
# Python helpers live here only; rules stay declarative (no lambdas).

import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

from crbnn.config.checks import ConfigError
from crbnn.config.checks import validate_config as check_and_resolve
from crbnn.data.inputs import INPUTS
from crbnn.common.logs import prepend_pythonpath
from crbnn.config.regime import known_values
from crbnn.common.seeds import derive_seed

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
    try:
        SEQUENCE_TR = check_and_resolve(config, SCHEMA_DIR, Path.cwd())
    except ConfigError as e:
        raise WorkflowError(f"invalid config at {e}") from None


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
SAMPLED_TABLES = ("train", "val", "test")
TABLE_RE = r"train|val|test|grid_[A-Za-z0-9-]+"


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
    tables = config["simulate"]["tables"]
    if wildcards.name in tables:
        return tables[wildcards.name]["shards"]
    return config["simulate"]["grid_shards"]


def table_size(wildcards):
    """Number of rows of sampled table ``wildcards.name``."""
    return config["simulate"]["tables"][wildcards.name]["n"]


def table_seed(wildcards):
    """Seed of sampled table ``wildcards.name``, derived from simulate.seed and the name."""
    return derive_seed(config["simulate"]["seed"], wildcards.name)


def basis_seed(wildcards=None):
    return derive_seed(config["simulate"]["seed"], "basis")


def shard_paths(wildcards):
    """The shard files merge_shards concatenates, in order."""
    return [
        f"results/simulate_dataset/{wildcards.name}/shard_{i}.h5"
        for i in range(n_shards(wildcards))
    ]


def known_tissue_values(wildcards=None):
    """Values of the tissue parameters the model holds known (crbnn.config.regime), from their fixed priors."""
    model = config["model"]
    return known_values(
        config["priors"]["parameters"], model["estimated"], model["nuisance"]
    )


def gpu_request(wildcards=None):
    """GPUs per GPU-capable job: compute.gpus unless the device is the CPU."""
    return 0 if config["compute"]["device"] == "cpu" else config["compute"]["gpus"]


def nlls_solver_settings():
    """The NLLS settings every fit uses: config['nlls'] without the grid-subset keys.

    Passing only these to the image and test-set fits keeps a change of the grid subset from
    rerunning them.
    """
    return {
        k: v
        for k, v in config["nlls"].items()
        if k not in ("grid_realizations", "grid_stride")
    }
