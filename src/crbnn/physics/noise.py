"""The measurement model: ``y = M0 c + n`` with complex white Gaussian noise (docs/physics.md section 7).

Coefficients ``c`` are simulated at M0 = 1.  A measurement multiplies them by a complex proton
density ``M0`` and adds noise ``n`` whose real and imaginary parts are independent N(0, sigma^2);
the SNR is ``|M0| / sigma`` and the CRB of a measurement is the CRB at M0 = 1, sigma = 1 times
``sigma^2 / |M0|^2`` (:func:`crb_scale`).  Every stage that makes noisy data (training and validation,
the test set, the grids, the SNR sweep, the phantoms) draws it with :func:`draw_m0` and
:func:`add_noise`, so noise means the same thing everywhere.

Random numbers come from a ``numpy.random.Generator`` (float64, complex128) or a CPU
``torch.Generator`` (the real dtype of the data, moved to the data's device).  The order of the draws
is fixed: |M0| (when drawn from a range), the phase of M0, then the real parts and the imaginary parts
of the noise, so one seed gives one data set.  The phase is drawn even when it is not used, so the
noise does not depend on ``random_phase``.

>>> rng = np.random.default_rng(0)
>>> m0 = draw_m0(rng, (3,), (0.5, 1.0))
>>> bool(np.all((np.abs(m0) >= 0.5) & (np.abs(m0) <= 1.0)))
True
>>> y = add_noise(rng, m0[:, None] * np.ones((3, 4)), 0.0)
>>> y.shape, bool(np.allclose(y, m0[:, None]))
((3, 4), True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)
Generator = np.random.Generator | torch.Generator


def _uniform(rng: Generator, shape: tuple[int, ...]) -> Any:
    """U[0, 1) of ``shape``: float64 numpy from a numpy generator, float32 torch from a torch one."""
    if isinstance(rng, torch.Generator):
        return torch.rand(shape, generator=rng, dtype=torch.float32)  # whatever the default dtype
    return rng.random(shape)


def draw_m0(
    rng: Generator, shape: tuple[int, ...], magnitude: float | Sequence[float], random_phase: bool = True
) -> Any:
    """Complex M0 of ``shape``: ``|M0|`` fixed (a number) or ~ U(low, high) (a pair), phase ~ U(0, 2 pi).

    With ``random_phase=False`` the phase is drawn and set to 0 (the noise that follows is unchanged).
    A numpy generator gives complex128, a torch generator complex64 (on the CPU).
    """
    if isinstance(magnitude, (int, float)):
        mag = float(magnitude)
    else:
        lo, hi = float(magnitude[0]), float(magnitude[1])
        mag = lo + (hi - lo) * _uniform(rng, shape)
    phase = 2 * math.pi * _uniform(rng, shape)
    if isinstance(rng, torch.Generator):
        mag_t = torch.as_tensor(mag, dtype=torch.float32).expand(shape)
        phase = phase if random_phase else torch.zeros_like(phase)
        return torch.polar(mag_t, phase).to(torch.complex64)
    if not random_phase:
        phase = np.zeros_like(phase)
    return mag * np.exp(1j * phase)


def add_noise(rng: Generator, clean: Array, sigma: float) -> Array:
    """``clean + sigma * (n_re + 1j n_im)`` with n_re, n_im ~ N(0, 1) of ``clean.shape``, drawn in that order.

    numpy: complex128.  torch: noise of the real dtype of ``clean`` drawn on the CPU from the
    generator, then moved to ``clean.device``.
    """
    if isinstance(rng, torch.Generator):
        real = torch.empty(0, dtype=clean.dtype).real.dtype
        shape = tuple(clean.shape)
        noise = torch.complex(sigma * torch.randn(shape, generator=rng, dtype=real),
                              sigma * torch.randn(shape, generator=rng, dtype=real))
        return clean + noise.to(clean.device)
    clean = np.asarray(clean, dtype=np.complex128)
    return clean + sigma * (rng.standard_normal(clean.shape) + 1j * rng.standard_normal(clean.shape))


def sigma_for_snr(snr: float, m0_magnitude: float = 1.0) -> float:
    """Noise standard deviation of each real and imaginary part for ``SNR = |M0| / sigma``.

    >>> sigma_for_snr(50.0)
    0.02
    """
    if not snr > 0:
        raise ValueError(f"SNR must be > 0, got {snr}")
    return float(m0_magnitude) / float(snr)


def crb_scale(sigma: float, m0: Any = None, *, m0_abs2: Any = None, floor: float | None = None) -> Any:
    """Factor ``sigma^2 / |M0|^2`` from the CRB at M0 = 1, sigma = 1 to the CRB of a measurement.

    The one home of this scaling: numpy arrays, torch tensors (any device, their dtype) and numbers.
    ``m0``: the complex (or real) M0; or ``m0_abs2``: ``|M0|^2`` where it is already known (e.g. from
    :func:`crbnn.learn.training_data.draw_noisy`).  ``floor``: a lower bound on ``|M0|^2`` (a voxel
    whose best-fitting M0 is 0 gets a huge, finite factor instead of a division by zero).

    >>> float(crb_scale(0.02, 0.5))
    0.0016
    >>> crb_scale(0.5, m0_abs2=torch.tensor([0.25, 1.0])).tolist()
    [1.0, 0.25]
    >>> float(crb_scale(1.0, np.array([0.0]), floor=0.5)[0])
    2.0
    """
    if (m0 is None) == (m0_abs2 is None):
        raise TypeError("crb_scale: give exactly one of m0 and m0_abs2")
    abs2 = abs(m0) ** 2 if m0_abs2 is None else m0_abs2
    if floor is not None:
        abs2 = torch.clamp_min(abs2, floor) if isinstance(abs2, torch.Tensor) else np.maximum(abs2, floor)
    return sigma**2 / abs2
