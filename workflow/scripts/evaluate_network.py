"""Test-set metrics of one trained network (rule evaluate_network) as JSON."""

from crbnn.common.device import resolve_device, set_threads
from crbnn.common.io import write_json
from crbnn.common.logs import setup_logging
from crbnn.evaluate.test_set import evaluate_model
from crbnn.learn.training_data import read_training_data
from crbnn.learn.model_file import load_model


def main(snakemake):
    log = setup_logging(snakemake.log)
    set_threads(snakemake.threads)
    test = read_training_data(snakemake.input.test)
    model = load_model(snakemake.input.model, expect_basis_sha256=test.basis_sha256,
                       expect_sequence_sha256=test.sequence_sha256,
                       device=resolve_device(snakemake.params.device))
    metrics = evaluate_model(model, test, realizations=snakemake.params.realizations, seed=snakemake.params.seed)
    write_json(snakemake.output.metrics, metrics)
    log.info("%s: CRB-normalized test loss %.4g %s", snakemake.input.model, metrics["crb_loss_mean"],
             metrics["crb_loss"])


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
