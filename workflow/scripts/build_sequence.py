"""Read the pulse train (public control file or the user's file) into resources/sequence.h5."""

from crbnn.logging_utils import setup_logging
from crbnn.sequence import load_sequence, save_sequence


def main(snakemake):
    log = setup_logging(snakemake.log)
    seq = load_sequence(snakemake.input.source, tr_if_missing=snakemake.params.tr)
    log.info("pulse train %s: %d pulses, TR %.6g s, sha256 %s", seq.source, len(seq), seq.tr, seq.sha256)
    save_sequence(seq, snakemake.output[0])


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
