"""Priors of the tissue parameters and seeded sampling of parameter tables.

A prior is given per tissue parameter (``crbnn.common.parameters.TISSUE_PARAMETERS`` order: m0s, T1, T2f,
Rex, T2s, omega0, B1) as a dict, in SI units (1, s, s, 1/s, s, rad/s, 1)::

    {"dist": "fixed", "value": 1.0}
    {"dist": "uniform", "low": 0.5, "high": 2.5}
    {"dist": "loguniform", "low": 0.02, "high": 0.2}
    {"dist": "truncnormal", "mean": 0.15, "std": 0.15, "low": 0.0, "high": 0.35}

Optional keys:

* ``transform: reciprocal``: the distribution (and its numbers) is of the reciprocal 1/x, e.g. a
  truncated normal of R2f in 1/s for the parameter T2f = 1/R2f.  Default ``none``.
* ``units: pi/TR``: the numbers are in units of pi/TR (needs ``tr``); for omega0,
  ``{"dist": "uniform", "low": -1, "high": 1, "units": "pi/TR"}`` is U(-pi/TR, pi/TR) rad/s.

Constraints are strings ``"A < B"`` (also ``<=``, ``>``, ``>=``) between parameter names; rows that
violate one are redrawn (at most ``max_tries`` rounds, then an error).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from crbnn.common.parameters import TISSUE_PARAMETERS

_CONSTRAINT = re.compile(r"^\s*(\w+)\s*(<=|>=|<|>)\s*(\w+)\s*$")


_OPS = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}


class PriorError(ValueError):
    """An invalid prior specification (the message names the parameter and key)."""


def _scale(spec: Mapping[str, Any], name: str, tr: float | None) -> float:
    units = spec.get("units", "SI")
    if units == "SI":
        return 1.0
    if units == "pi/TR":
        if tr is None or not tr > 0:
            raise PriorError(f"priors.{name}: units 'pi/TR' need the pulse train's TR, got tr={tr}")
        return math.pi / tr
    raise PriorError(f"priors.{name}.units: unknown units {units!r}; use 'SI' or 'pi/TR'")


def _draw(spec: Mapping[str, Any], name: str, n: int, rng: np.random.Generator, tr: float | None) -> NDArray[np.float64]:
    dist = spec.get("dist")
    scale = _scale(spec, name, tr)

    def num(key: str) -> float:
        if key not in spec:
            raise PriorError(f"priors.{name}: dist {dist!r} needs key {key!r}")
        return float(spec[key]) * scale

    if dist == "fixed":
        x = np.full(n, num("value"))
    elif dist in ("uniform", "loguniform", "truncnormal"):
        lo, hi = num("low"), num("high")
        if not lo < hi:
            raise PriorError(f"priors.{name}: need low < high, got low={spec['low']}, high={spec['high']}")
        if dist == "uniform":
            x = rng.uniform(lo, hi, n)
        elif dist == "loguniform":
            if lo <= 0:
                raise PriorError(f"priors.{name}: loguniform needs low > 0, got {spec['low']}")
            x = np.exp(rng.uniform(math.log(lo), math.log(hi), n))
        else:
            from scipy.stats import truncnorm

            mean, std = num("mean"), num("std")
            if not std > 0:
                raise PriorError(f"priors.{name}: truncnormal needs std > 0, got {spec['std']}")
            x = truncnorm.rvs((lo - mean) / std, (hi - mean) / std, loc=mean, scale=std, size=n, random_state=rng)
    else:
        raise PriorError(f"priors.{name}.dist: unknown distribution {dist!r}; use fixed, uniform, loguniform or truncnormal")
    transform = spec.get("transform", "none")
    if transform == "reciprocal":
        if np.any(x <= 0):
            raise PriorError(f"priors.{name}: 'transform: reciprocal' needs a distribution of positive values")
        x = 1.0 / x
    elif transform != "none":
        raise PriorError(f"priors.{name}.transform: unknown {transform!r}; use 'none' or 'reciprocal'")
    return np.asarray(x, dtype=np.float64)


def parse_constraint(text: str, names: Sequence[str] = TISSUE_PARAMETERS) -> tuple[int, str, int]:
    """Parse ``"A < B"`` into (column of A, operator, column of B).

    >>> parse_constraint("T2f < T1")
    (2, '<', 1)
    """
    m = _CONSTRAINT.match(text)
    if not m or m.group(1) not in names or m.group(3) not in names:
        raise PriorError(f"priors.constraints: cannot parse {text!r}; expected 'A < B' with A, B in {list(names)}")
    return names.index(m.group(1)), m.group(2), names.index(m.group(3))


def sample_parameters(
    priors: Mapping[str, Any],
    n: int,
    seed: int,
    tr: float | None = None,
    names: Sequence[str] = TISSUE_PARAMETERS,
) -> NDArray[np.float64]:
    """Draw an [n, len(names)] float64 parameter table from ``priors``, reproducibly for ``seed``.

    ``priors`` is the config section: ``{"parameters": {name: spec, ...}, "constraints": [...],
    "max_tries": 100}`` (see the module docstring).  ``tr`` (s) is needed for ``units: pi/TR``.

    >>> pri = {"parameters": {"m0s": {"dist": "uniform", "low": 0, "high": 0.3},
    ...        "T1": {"dist": "uniform", "low": 0.5, "high": 2.5},
    ...        "T2f": {"dist": "loguniform", "low": 0.02, "high": 3.0},
    ...        "Rex": {"dist": "fixed", "value": 10.0},
    ...        "T2s": {"dist": "truncnormal", "mean": 14e-6, "std": 4e-6, "low": 5e-6, "high": 21e-6},
    ...        "omega0": {"dist": "uniform", "low": -1, "high": 1, "units": "pi/TR"},
    ...        "B1": {"dist": "fixed", "value": 1.0}}, "constraints": ["T2f < T1"]}
    >>> x = sample_parameters(pri, 1000, seed=1, tr=3.5e-3)
    >>> x.shape, bool(np.all(x[:, 2] < x[:, 1])), bool(np.abs(x[:, 5]).max() <= np.pi / 3.5e-3)
    ((1000, 7), True, True)
    """
    if n < 0:
        raise PriorError(f"number of samples must be >= 0, got {n}")
    params = priors.get("parameters", {})
    missing = [k for k in names if k not in params]
    extra = [k for k in params if k not in names]
    if missing or extra:
        raise PriorError(f"priors.parameters: missing {missing}, unknown {extra}; need exactly {list(names)}")
    constraints = [parse_constraint(c, names) for c in priors.get("constraints", [])]
    max_tries = int(priors.get("max_tries", 100))
    rng = np.random.default_rng(seed)
    out = np.empty((n, len(names)), dtype=np.float64)
    todo = np.arange(n)
    for _ in range(max_tries):
        for j, name in enumerate(names):
            out[todo, j] = _draw(params[name], name, todo.size, rng, tr)
        ok = np.ones(todo.size, dtype=bool)
        for a, op, b in constraints:
            ok &= _OPS[op](out[todo, a], out[todo, b])
        todo = todo[~ok]
        if todo.size == 0:
            return out
    raise PriorError(
        f"priors.constraints {priors.get('constraints')}: {todo.size} of {n} samples still violate them after "
        f"{max_tries} redraws; the priors hardly overlap the allowed region (widen them or raise priors.max_tries)"
    )
