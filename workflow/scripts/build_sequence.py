"""Read the pulse train (public control file or the user's file) into resources/sequence.h5.

``params.tr`` is the TR resolved at parse time (crbnn.config.checks.resolve_tr); the file's own TR
must agree with it.  Pulses outside the R2sl grid (``params.r2sl``) are an error naming the pulse.
"""

from crbnn.common.logs import setup_logging
from crbnn.data.sequence import check_in_r2sl_grid, load_sequence, save_sequence


def main(snakemake):
    log = setup_logging(snakemake.log)
    seq = load_sequence(snakemake.input.source, tr=snakemake.params.tr)
    check_in_r2sl_grid(seq, snakemake.params.r2sl)
    log.info("pulse train %s: %d pulses, TR %.6g s, sha256 %s", seq.source, len(seq), seq.tr, seq.sha256)
    save_sequence(seq, snakemake.output[0])


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
