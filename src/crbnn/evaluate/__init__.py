"""Stage ``evaluate``: statistics of the estimators against the CRB, and the run's summary.

* :mod:`crbnn.evaluate.grid`: bias, std and CRB-normalized loss on the test grids
* :mod:`crbnn.evaluate.test_set`: CRB-normalized errors on the held-out test set
* :mod:`crbnn.evaluate.snr_sweep`: estimators against the CRB over a range of SNRs
* :mod:`crbnn.evaluate.regime_comparison`: CRBs of the paper's regime against all parameters unknown
* :mod:`crbnn.evaluate.summary`: the headline numbers (``results/summary.json``) and the claim's verdict
"""
