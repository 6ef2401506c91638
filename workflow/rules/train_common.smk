# Helpers of the training stage (input functions and settings), kept apart from its rules.


TRAIN_LOSSES = "mse|crb|bias_reduced"


def train_settings(wildcards):
    """Flat crbnn.learn.train_settings.TrainSettings dict of one loss (only the config keys that loss uses)."""
    from crbnn.learn.train_settings import settings_for_loss

    return settings_for_loss(config["train"], wildcards.loss)


def train_init(wildcards):
    """The crb network that bias_reduced fine-tunes (train.bias_reduced.init_from_crb), else nothing."""
    if derived.fine_tunes_from_crb(config, wildcards.loss):
        return {"init": "results/train_network/crb/model.pt"}
    return {}


REPLICATES = derived.seed_replicates(config)


def replicate_settings(wildcards):
    """train_settings of one loss with the replicate's training seed."""
    return {**train_settings(wildcards), "seed": int(wildcards.seed)}


def replicate_init(wildcards):
    """The crb network of the same seed that a replicate bias_reduced network fine-tunes, else nothing."""
    if derived.fine_tunes_from_crb(config, wildcards.loss):
        return {"init": f"results/train_replicates/seed{wildcards.seed}/crb/model.pt"}
    return {}
