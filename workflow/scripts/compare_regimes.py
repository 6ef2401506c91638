"""sqrt(CRB) at reference points in the config's regime and with all nine unknown (rule compare_regimes)."""

from crbnn.common.io import write_json
from crbnn.common.logs import setup_logging
from crbnn.data.basis import load_basis
from crbnn.data.sequence import load_sequence
from crbnn.evaluate.regime_comparison import compare_regimes
from crbnn.physics.r2sl import R2slTable


def main(snakemake):
    log = setup_logging(snakemake.log)
    p = snakemake.params
    rows = compare_regimes(load_sequence(snakemake.input.sequence), load_basis(snakemake.input.basis).u, p.fixed,
                           p.estimated, p.nuisance, M0_abs=p.M0_abs, sigma=p.sigma,
                           r2sl=R2slTable.load(snakemake.input.r2sl))
    for r in rows:
        log.info("%s: sqrt(CRB) %s, all nine unknown %s", r["point"], r["sqrt_crb"], r["sqrt_crb_all_unknown"])
    write_json(snakemake.output[0], {"M0_abs": p.M0_abs, "sigma": p.sigma, "nuisance": list(p.nuisance),
                                     "points": rows})


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
