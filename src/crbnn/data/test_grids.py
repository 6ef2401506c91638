"""Regular test grids of tissue parameters (the paper's evaluation grids).

A grid varies two (or more) tissue parameters on regular axes and holds every other tissue
parameter at a fixed, white-matter-like value.  It is written in the project's parameter-table
layout (``docs/architecture.md``) so that the generic simulation stage produces its noise-free
coefficients, Jacobians and CRBs:

* dataset ``parameters`` [n, 7] float64, columns ``TISSUE_PARAMETERS`` (attrs ``names``, ``units``);
* root attrs ``seed`` (0: a grid has no randomness) and ``axes``: JSON of
  ``{"grid": name, "order": [axis names in grid order], "values": {name: [...]},
  "units": {name: unit}, "fixed": {parameter: value of every non-axis parameter}}``.

Rows run over the axes in C order (``numpy.meshgrid(..., indexing="ij")``: the last axis varies
fastest), so ``table.reshape(*shape, 7)`` recovers the grid.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from crbnn.common.io import PathLike
from crbnn.common.parameters import TISSUE_PARAMETERS, UNITS
from crbnn.data.datasets import write_parameter_table


@dataclass(frozen=True)
class Axis:
    """One grid axis: parameter ``name`` sampled at ``values`` (SI units of that parameter)."""

    name: str
    values: NDArray[np.float64]

    @classmethod
    def from_config(cls, name: str, spec: Mapping[str, Any]) -> "Axis":
        """Axis from ``{"start": a, "stop": b, "num": n, "spacing": "linear"|"log"}`` (inclusive ends).

        >>> Axis.from_config("T1", {"start": 0.5, "stop": 2.0, "num": 3}).values.tolist()
        [0.5, 1.25, 2.0]
        """
        if name not in TISSUE_PARAMETERS:
            raise ValueError(f"grid axis {name!r} is not a tissue parameter {TISSUE_PARAMETERS}")
        start, stop, num = float(spec["start"]), float(spec["stop"]), int(spec["num"])
        if num < 1:
            raise ValueError(f"grid axis {name!r}: num must be >= 1, got {num}")
        spacing = spec.get("spacing", "linear")
        if spacing == "linear":
            values = np.linspace(start, stop, num)
        elif spacing == "log":
            if start <= 0 or stop <= 0:
                raise ValueError(f"grid axis {name!r}: log spacing needs positive ends")
            values = np.geomspace(start, stop, num)
        else:
            raise ValueError(f"grid axis {name!r}: unknown spacing {spacing!r}")
        return cls(name, values.astype(np.float64))


@dataclass(frozen=True)
class Grid:
    """A regular grid: ``axes`` (in order) and ``fixed`` values of every other tissue parameter."""

    name: str
    axes: tuple[Axis, ...]
    fixed: dict[str, float]

    @property
    def shape(self) -> tuple[int, ...]:
        """Number of points along each axis."""
        return tuple(len(a.values) for a in self.axes)

    @property
    def axis_names(self) -> tuple[str, ...]:
        """Names of the axes (tissue parameters), in grid order."""
        return tuple(a.name for a in self.axes)

    def table(self) -> NDArray[np.float64]:
        """Parameter table [prod(shape), 7] float64, columns ``TISSUE_PARAMETERS``, C order.

        >>> g = make_grid("g", {"m0s": {"start": 0.1, "stop": 0.2, "num": 2},
        ...                     "T1": {"start": 1.0, "stop": 2.0, "num": 3}},
        ...               {"T2f": 0.07, "Rex": 15.0, "T2s": 12e-6, "omega0": 0.0, "B1": 1.0})
        >>> t = g.table(); t.shape, t[:3, 0].tolist(), t[:3, 1].tolist()
        ((6, 7), [0.1, 0.1, 0.1], [1.0, 1.5, 2.0])
        """
        mesh = np.meshgrid(*[a.values for a in self.axes], indexing="ij")
        n = int(np.prod(self.shape))
        out = np.empty((n, len(TISSUE_PARAMETERS)), dtype=np.float64)
        by_axis = {a.name: m.reshape(-1) for a, m in zip(self.axes, mesh)}
        for j, name in enumerate(TISSUE_PARAMETERS):
            out[:, j] = by_axis[name] if name in by_axis else self.fixed[name]
        return out

    def axes_attr(self) -> dict[str, Any]:
        """Description of the axes (stored as JSON in the ``axes`` attribute of the table file)."""
        return {
            "grid": self.name,
            "order": list(self.axis_names),
            "values": {a.name: a.values.tolist() for a in self.axes},
            "units": {a.name: UNITS[a.name] for a in self.axes},
            "fixed": dict(self.fixed),
        }


def make_grid(name: str, axes: Mapping[str, Mapping[str, Any]], fixed: Mapping[str, float]) -> Grid:
    """Build a :class:`Grid` from config mappings; every non-axis parameter needs a fixed value.

    ``axes`` maps parameter name -> ``{"start", "stop", "num"[, "spacing"]}`` (insertion order is the
    grid order); ``fixed`` maps parameter name -> value in SI units (extra entries for axis
    parameters are ignored).
    """
    if len(axes) < 1:
        raise ValueError(f"grid {name!r} has no axes")
    ax = tuple(Axis.from_config(k, v) for k, v in axes.items())
    missing = [p for p in TISSUE_PARAMETERS if p not in axes and p not in fixed]
    if missing:
        raise ValueError(f"grid {name!r}: no fixed value for {missing}")
    fix = {p: float(fixed[p]) for p in TISSUE_PARAMETERS if p not in axes}
    return Grid(name, ax, fix)


def write_grid(path: PathLike, grid: Grid) -> None:
    """Write the grid's parameter table atomically in the project's parameter-table layout."""
    write_parameter_table(path, grid.table(), seed=0, axes=grid.axes_attr())


def read_axes(attrs: Mapping[str, Any]) -> list[tuple[str, NDArray[np.float64]]]:
    """Axes ``[(name, values), ...]`` from the root attributes of a grid table or simulated grid."""
    raw = attrs["axes"]
    d = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    return [(name, np.asarray(d["values"][name], dtype=np.float64)) for name in d["order"]]
