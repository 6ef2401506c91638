"""Definitions every stage shares: parameter names and units, seeds, the device, file writing, logs.

* :mod:`crbnn.common.parameters`: parameter names of both parametrizations and their units (one table)
* :mod:`crbnn.common.seeds`: ``derive_seed``, the one derivation of every random stream
* :mod:`crbnn.common.device`: the torch device (CUDA when present, else CPU) and threads
* :mod:`crbnn.common.io`: atomic writes, hashes, JSON, NIfTI and HDF5 helpers
* :mod:`crbnn.common.logs`: one log file per rule job, script arguments
* :mod:`crbnn.common.interrupt`: graceful stop on SIGTERM/SIGINT
"""
