"""Copy (from inputs.data_dir) or download (pinned URL or mirror) one public input, sha256-verified (rule fetch_inputs)."""

from pathlib import Path

from crbnn.inputs import fetch_input
from crbnn.logging_utils import setup_logging


def main(snakemake):
    setup_logging(snakemake.log)
    out = Path(snakemake.output[0])
    fetch_input(
        out.name,
        out,
        data_dir=snakemake.params.data_dir,
        timeout=snakemake.params.timeout,
        mirror_url=snakemake.params.mirror_url,
    )


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
