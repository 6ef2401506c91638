"""The signal model and its bounds (docs/physics.md): simulation with exact Jacobians, and CRBs.

* :mod:`crbnn.physics.signal`: hybrid-state signal of the linearized generalized Bloch model
* :mod:`crbnn.physics.noise`: the measurement model, y = M0 c + complex white Gaussian noise
* :mod:`crbnn.physics.crb`: Fisher information and Cramer-Rao bounds from Jacobians
* :mod:`crbnn.physics.r2sl`, :mod:`crbnn.physics.greens`: the semi-solid saturation rate and lineshape
* :mod:`crbnn.physics.hamiltonian`, :mod:`crbnn.physics.expm`, :mod:`crbnn.physics.expm_cpu`, :mod:`crbnn.physics.pulse_cpu`,
  :mod:`crbnn.physics.recurrence`: the numerical kernels (torch and numba) behind the signal
* :mod:`crbnn.physics.reference`: a plain per-pulse implementation for tests and benchmarks
"""
