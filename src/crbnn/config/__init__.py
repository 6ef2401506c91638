"""The configuration: validation, consistency checks and settings derived from it.

What the ``.smk`` files call to decide what runs lives here, tested directly.

* :mod:`crbnn.config.checks`: schema validation and consistency checks of a whole config
* :mod:`crbnn.config.regime`: which parameters are estimated, unknown (nuisance) or known
"""
