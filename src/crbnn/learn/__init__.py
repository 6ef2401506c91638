"""Stage ``train``: networks, losses, training data, the training loop, checkpoints and model files.

* :mod:`crbnn.learn.nets`: fully connected estimation networks (architecture only)
* :mod:`crbnn.learn.losses`: MSE, CRB-normalized and bias-reduced losses
* :mod:`crbnn.learn.train_settings`: ``TrainSettings`` from the config's ``train`` section
* :mod:`crbnn.learn.training_data`: training data, noisy inputs, input normalization, the validation set
* :mod:`crbnn.learn.loop`: the training loop (resume, epoch, validation, checkpoint)
* :mod:`crbnn.learn.checkpoints`: checkpoints of interrupted runs
* :mod:`crbnn.learn.model_file`: model files (what inference needs), loading, prediction
"""
