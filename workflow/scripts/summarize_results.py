"""Headline numbers of the run, results/summary.json (rule summarize; crbnn.evaluate.summary)."""

from crbnn.common.io import write_json
from crbnn.common.logs import setup_logging
from crbnn.data.sequence import load_sequence
from crbnn.evaluate.summary import summarize


def main(snakemake):
    log = setup_logging(snakemake.log)
    losses = snakemake.params.losses
    seq = load_sequence(snakemake.input.sequence)
    config = {**snakemake.params.config, "n_pulses": len(seq), "tr": float(seq.tr)}
    summary = summarize(
        evaluations=dict(zip(losses, snakemake.input.evaluations)),
        histories=dict(zip(losses, snakemake.input.histories)),
        summary_table=snakemake.input.table,
        config=config,
        invivo_regions=snakemake.input.invivo_regions[0] if snakemake.input.invivo_regions else None,
        snr_sweep=snakemake.input.sweep,
        snr_sweep_nc=snakemake.input.sweep_nc,
        dev_evaluations=dict(zip(losses, snakemake.input.dev_evaluations)),
        dev_snr_sweep=snakemake.input.dev_sweep,
        invivo_seed=snakemake.params.invivo_seed,
        replicate_sweeps=list(snakemake.input.replicate_sweeps),
        regimes=snakemake.input.regimes,
        grids=dict(zip(snakemake.params.grids, snakemake.input.grids)),
    )
    log.info("claims: %s", summary["claims"]["line"])
    log.info("summary sections: %s", sorted(summary))
    write_json(snakemake.output.summary, summary)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
