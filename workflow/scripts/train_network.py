"""Train one network (rule train_network): read the data sets, train, write model and history.

Checkpoints: results/train_network/<loss>/checkpoints/ beside the model (not a rule output); a
restarted job resumes there.  SIGTERM/SIGINT finish the current epoch, write its checkpoint and exit
with status 1 (crbnn.common.interrupt), so the rerun resumes; a resumed job appends to its log.  The final
checkpoint is kept: if Snakemake discards a finished job's outputs (snakemake itself interrupted),
the rerun writes the model from it at once instead of retraining.
``params.nlls`` (optional): the NLLS nominal values and bounds stored in the model file as
``meta["nlls"]`` for ``crbnn infer`` (crbnn.config.settings.nlls_model_meta).
``network.json``: the architecture, weight count and the device it trained on (the manuscript's methods).
Run without Snakemake: ``main(ScriptArgs(input=..., output=..., params=..., wildcards={"loss": ...}))``.
"""

import json
import sys
from pathlib import Path

from crbnn.common.device import describe_device, resolve_device, set_threads
from crbnn.common.io import atomic_write
from crbnn.common.interrupt import Interrupted, stop_on_signals
from crbnn.common.logs import setup_logging
from crbnn.learn.checkpoints import CHECKPOINT_NAME
from crbnn.learn.training_data import read_training_data
from crbnn.learn.loop import train_network, write_history
from crbnn.learn.model_file import load_model, save_model
from crbnn.learn.nets import count_weights
from crbnn.learn.train_settings import TrainSettings


def main(snakemake):
    checkpoints = Path(snakemake.output.model).parent / "checkpoints"
    resuming = (checkpoints / CHECKPOINT_NAME).exists()
    log = setup_logging(snakemake.log, append=resuming)
    for stale in checkpoints.glob(f".{CHECKPOINT_NAME}.*.tmp"):  # left by a killed (SIGKILL) write
        stale.unlink()
        log.info("removed %s (partial checkpoint of a killed job)", stale)
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
    with stop_on_signals() as stop:
        try:
            model, history = train_network(train, val, settings, loss, device=device, checkpoint_dir=checkpoints,
                                           init_from=init, should_stop=stop)
        except Interrupted as e:
            log.error("%s (%s)", e, stop.name)
            sys.exit(1)
        nlls = snakemake.params.get("nlls")
        if nlls:  # what crbnn infer needs for sqrt(CRB) and residual maps (crbnn.config.settings.nlls_model_meta)
            model.meta["nlls"] = {"nominal": dict(nlls["nominal"]), "bounds": dict(nlls["bounds"])}
        write_history(history, snakemake.output.history)
        save_model(model, snakemake.output.model)
        with atomic_write(snakemake.output.network) as tmp:  # the manuscript's architecture and hardware
            tmp.write_text(json.dumps({"architecture": model.architecture(), "n_weights": count_weights(model),
                                       "normalization": settings.normalization, "device": describe_device(device)},
                                      indent=1))
    sel = model.meta.get("selected_epoch", len(history))
    log.info("wrote %s: the weight average of epoch %d (lowest validation loss), validation CRB-normalized "
             "loss %.4g (last epoch %.4g)", snakemake.output.model, sel, history[sel - 1]["val_crb_mean"],
             history[-1]["val_crb_mean"])


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
