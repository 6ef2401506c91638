"""Stages ``figures`` and ``manuscript``: plots, LaTeX numbers and tables, the PDF, the run record.

* :mod:`crbnn.report.plots`: one figure style and the evaluation figures
* :mod:`crbnn.report.map_plots`: figures of parameter maps
* :mod:`crbnn.report.latex`: LaTeX macros and figure environments from the summary
* :mod:`crbnn.report.tables`: the manuscript's tables (priors, SNR sweep, regions, claims)
* :mod:`crbnn.report.claims_text`: the claims' verdicts and numbers as plain text (README, manuscript)
* :mod:`crbnn.report.manuscript`: whether and how the PDF is built
* :mod:`crbnn.report.record`: the record of a reference run and the README block
"""
