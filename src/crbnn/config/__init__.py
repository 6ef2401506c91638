"""The configuration: validation, consistency checks and settings derived from it.

What the ``.smk`` files call to decide what runs lives here, tested directly.

* :mod:`crbnn.config.checks`: schema validation and consistency checks of a whole config
* :mod:`crbnn.config.files`: reading config files (errors name the file) and merging them like Snakemake
* :mod:`crbnn.config.resources`: memory per job and writable folders, checked before any job starts
* :mod:`crbnn.config.regime`: which parameters are estimated, unknown (nuisance) or known
* :mod:`crbnn.config.settings`: settings derived from a validated config (what the rules pass to
  their jobs: NLLS settings and bounds, seeds, table sizes, the manuscript's config values)
"""
