"""Train one network (rule train_network): read the data sets, train, write model and history.

Checkpoints: results/train_network/<loss>/checkpoints/ beside the model (not a rule output); a
restarted job resumes there, and the checkpoint is deleted once the model is written.
Run without Snakemake: ``main(ScriptArgs(input=..., output=..., params=..., wildcards={"loss": ...}))``.
"""

from pathlib import Path

from crbnn.devices import resolve_device, set_threads
from crbnn.logging_utils import setup_logging
from crbnn.training import (
    TrainSettings,
    load_model,
    read_training_data,
    remove_checkpoint,
    save_model,
    train_network,
    write_history,
)


def main(snakemake):
    log = setup_logging(snakemake.log)
    set_threads(snakemake.threads)
    loss = snakemake.wildcards.loss
    settings = TrainSettings.from_dict(snakemake.params.settings)
    device = resolve_device(snakemake.params.device)
    train = read_training_data(snakemake.input.train, max_samples=settings.max_train_samples)
    val = read_training_data(snakemake.input.val)
    init = None
    if "init" in snakemake.input.keys():
        init = load_model(snakemake.input.init, expect_basis_sha256=train.basis_sha256,
                          expect_sequence_sha256=train.sequence_sha256)
        log.info("fine-tuning from %s", snakemake.input.init)
    checkpoints = Path(snakemake.output.model).parent / "checkpoints"
    model, history = train_network(train, val, settings, loss, device=device, checkpoint_dir=checkpoints,
                                   init_from=init)
    write_history(history, snakemake.output.history)
    save_model(model, snakemake.output.model)
    remove_checkpoint(checkpoints)
    log.info("wrote %s: final validation CRB-normalized loss %.4g", snakemake.output.model,
             history[-1]["val_crb_mean"])


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
