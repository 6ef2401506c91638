"""The reference estimator: non-linear least squares (:mod:`crbnn.estimate.nlls`, the public API; the solver
:mod:`~crbnn.estimate.varpro`, the model :mod:`~crbnn.estimate.paper_model`, the starts :mod:`~crbnn.estimate.dictionary`)."""
