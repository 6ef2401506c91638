"""Import numba configured for use beside PyTorch (import ``numba`` from here).

numba's OpenMP threading layer would start a second OpenMP runtime beside PyTorch's; the spinning
workers of the two then slow every torch operation several-fold (measured: 4-10x on 2 cores).
numba's own ``workqueue`` pool has no such interference.  The layer must be chosen before the
first parallel kernel runs, hence one place that every module imports numba through.
"""

import numba

numba.config.THREADING_LAYER = "workqueue"

__all__ = ["numba"]
