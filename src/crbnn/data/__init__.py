"""Stage ``data`` and ``simulate``: inputs, pulse trains, bases, priors, grids and simulated data sets.

* :mod:`crbnn.data.inputs`: the public inputs, pinned by URL and sha256 (download or local folder)
* :mod:`crbnn.data.sequence`: pulse trains (alpha, TRF, TR)
* :mod:`crbnn.data.basis`: temporal subspace bases
* :mod:`crbnn.data.priors`: priors of the tissue parameters and seeded parameter tables
* :mod:`crbnn.data.test_grids`: the regular test grids
* :mod:`crbnn.data.simulate`: subspace coefficients, Jacobians and CRBs of a parameter table
* :mod:`crbnn.data.datasets`: parameter-table and data-set files (HDF5)
"""
