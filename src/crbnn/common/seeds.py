"""Seeds: the derivation of independent, reproducible random streams from the config's seeds.

Every seed of the config enters through ``derive_seed(seed, name)``, where ``name`` says what the
stream is for (``"train"``, ``"noise"``, ``"init"``, ``"validation"``, a phantom kind, ...); the
library functions that draw take such a derived seed.  A function that needs a family of streams
from one derived seed (one per SNR of the sweep) splits it with ``stream_seed(seed, index)``.  Both
results fit numpy's and torch's generators.
"""

from __future__ import annotations

import hashlib

import numpy as np


def derive_seed(seed: int, name: str) -> int:
    """A 32-bit seed for the stream ``name``, derived deterministically from the config ``seed``.

    >>> derive_seed(2022, "train") == derive_seed(2022, "train") != derive_seed(2022, "val")
    True
    >>> 0 <= derive_seed(1, "noise") < 2**32
    True
    """
    digest = hashlib.sha256(f"{int(seed)}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def stream_seed(seed: int, index: int) -> int:
    """A 32-bit seed of the ``index``-th of a family of independent streams split from ``seed``
    (numpy ``SeedSequence([seed, index])``).

    >>> stream_seed(7, 0) == stream_seed(7, 0) != stream_seed(7, 1)
    True
    >>> stream_seed(7, 3) == int(np.random.SeedSequence([7, 3]).generate_state(1)[0])
    True
    """
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])
