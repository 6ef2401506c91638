"""crbnn: Cramer-Rao bound-informed training of neural networks for quantitative MRI.

A reproduction of Zhang et al., MRM 2022 (doi:10.1002/mrm.29206): generalized-Bloch
magnetization-transfer physics with exact Jacobians, Cramer-Rao bounds, networks trained with
the MSE and CRB-normalized losses, their evaluation against non-linear least squares, and
inference on images.  Science lives here; the Snakemake workflow only calls it.
"""

__version__ = "0.1.0"
