"""Copy (from inputs.data_dir) or download (pinned URL or mirror) one public input, sha256-verified (rule fetch_inputs).

The source settings come from the config section ``inputs`` (not from params, so that a change of
source does not rerun the workflow); the mirror is ``inputs.mirror_url``, else $CRBNN_MIRROR_URL.
"""

from pathlib import Path

from crbnn.common.logs import setup_logging
from crbnn.data.inputs import fetch_input, resolve_mirror_url


def main(snakemake):
    setup_logging(snakemake.log)
    out = Path(snakemake.output[0])
    inputs = snakemake.config["inputs"]
    fetch_input(
        out.name,
        out,
        data_dir=inputs["data_dir"],
        timeout=inputs["download_timeout"],
        mirror_url=resolve_mirror_url(inputs["mirror_url"]),
    )


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
