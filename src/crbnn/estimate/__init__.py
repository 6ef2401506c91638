"""The reference estimator: non-linear least squares (:mod:`crbnn.estimate.nlls`)."""
