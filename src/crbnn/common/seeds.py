"""Seeds: one derivation of independent, reproducible random streams from the config's seeds.

Every random step of the project draws from a generator seeded with ``derive_seed(seed, name)``,
where ``seed`` is a seed of the config and ``name`` says what the stream is for (``"train"``,
``"noise"``, ``"grid_<name>"``, ...).  The result fits numpy's and torch's generators.
"""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, name: str) -> int:
    """A 32-bit seed for the stream ``name``, derived deterministically from the config ``seed``.

    >>> derive_seed(2022, "train") == derive_seed(2022, "train") != derive_seed(2022, "val")
    True
    >>> 0 <= derive_seed(1, "noise") < 2**32
    True
    """
    digest = hashlib.sha256(f"{int(seed)}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "little")
