"""Dictionary starts of the NLLS fits: the atoms of a coarse grid that best match each voxel.

A dictionary is the outer product of value lists (axes) of some fitted parameters, every other fitted
parameter at its nominal value; an atom matches a voxel y by |<g, y>| / ||g|| (the variable-projection
cost with the complex M0 in closed form is ||y||^2 - |<g, y>|^2 / ||g||^2).  :meth:`Dictionary.match`
returns one or several starts per voxel: the best atoms, or with ``distinct`` the best atom of each
of the best-matching values of some parameters (for example omega0, whose cost has several basins
near +-pi/TR: docs/nlls.md), so that a multi-start fit explores different basins rather than
neighbouring atoms of one basin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from crbnn.estimate.varpro import Model

#: Voxels matched per block (memory of the [block, atoms] score matrix).
MATCH_BLOCK = 16384


@dataclass
class Dictionary:
    """Atoms [m, P] (SI, columns ``names``) and their unit-norm model coefficients [m, R]."""

    atoms: NDArray[np.float64]
    signals: NDArray[np.complex128]
    names: tuple[str, ...]

    @classmethod
    def build(
        cls, model: Model, axes: Mapping[str, ArrayLike], nominal: Mapping[str, float], names: Sequence[str]
    ) -> Dictionary:
        """The dictionary of ``axes`` (``{name: values}``, outer product) with every other fitted parameter
        of ``names`` at ``nominal[name]``: one model evaluation without Jacobian of all atoms."""
        names = tuple(names)
        unknown = [a for a in axes if a not in names]
        if unknown:
            raise ValueError(f"dictionary axes {unknown} are not fitted parameters {list(names)}")
        ax_names = list(axes)
        grids = np.meshgrid(*[np.asarray(axes[a], dtype=np.float64) for a in ax_names], indexing="ij")
        m = grids[0].size if grids else 1
        atoms = np.empty((m, len(names)))
        for j, p in enumerate(names):
            atoms[:, j] = grids[ax_names.index(p)].reshape(-1) if p in ax_names else float(nominal[p])
        g, _ = model(torch.as_tensor(atoms), jacobian=False)
        g = g.cpu().numpy()
        return cls(atoms, g / np.linalg.norm(g, axis=1, keepdims=True).clip(1e-300), names)

    def match(self, y: ArrayLike, starts: int = 1, distinct: Sequence[str] = ()) -> NDArray[np.float64]:
        """Start values [n, starts, P] for the voxels y [n, R], best match first.

        Without ``distinct``: the ``starts`` best atoms.  With ``distinct`` (fitted parameter names):
        the atoms are grouped by their values of these parameters, and the starts are the best atom of
        each of the ``starts`` best-matching groups.  Fewer atoms (groups) than ``starts``: that many starts.

        >>> d = Dictionary(np.array([[0.0], [1.0], [2.0]]), np.eye(3, dtype=complex), ("a",))
        >>> d.match(np.array([[0.1, 0.9, 0.5j]]), starts=2)[0, :, 0].tolist()
        [1.0, 2.0]
        """
        yy = np.asarray(y, dtype=np.complex128)
        k = max(1, int(starts))
        unknown = [p for p in distinct if p not in self.names]
        if unknown:
            raise ValueError(f"distinct starts {unknown} are not fitted parameters {list(self.names)}")
        cols = [self.names.index(p) for p in distinct]
        if cols:
            _, group = np.unique(self.atoms[:, cols], axis=0, return_inverse=True)
            group = group.reshape(-1)
            members = [np.flatnonzero(group == gi) for gi in range(int(group.max()) + 1)]
        k = min(k, len(members) if cols else len(self.atoms))
        out = np.empty((len(yy), k, self.atoms.shape[1]))
        for s in range(0, len(yy), MATCH_BLOCK):
            score = np.abs(yy[s:s + MATCH_BLOCK] @ self.signals.conj().T)  # [b, m]
            if cols:
                best_in = np.stack([mem[score[:, mem].argmax(axis=1)] for mem in members], axis=1)  # [b, G]
                gscore = np.take_along_axis(score, best_in, axis=1)
                order = np.argsort(-gscore, axis=1)[:, :k]
                idx = np.take_along_axis(best_in, order, axis=1)
            else:
                idx = np.argsort(-score, axis=1)[:, :k]
            out[s:s + MATCH_BLOCK] = self.atoms[idx]
        return out


def dictionary_start(
    model: Model,
    y: ArrayLike,
    axes: Mapping[str, ArrayLike],
    nominal: Mapping[str, float],
    names: Sequence[str],
) -> NDArray[np.float64]:
    """Coarse dictionary match: start values [n, P] maximizing |<g, y>| / ||g||.

    ``axes`` maps some fitted parameter names to candidate values (their outer product is the
    dictionary); every other fitted parameter starts at ``nominal[name]``.  One model evaluation
    without Jacobian of prod(len(axes)) atoms (:class:`Dictionary`).
    """
    return Dictionary.build(model, axes, nominal, names).match(y)[:, 0]


def geometric(start: float, stop: float, num: int) -> list[float]:
    """Geometrically spaced values (for dictionary axes of T1, T2f).

    >>> [round(v, 3) for v in geometric(0.5, 2.0, 3)]
    [0.5, 1.0, 2.0]
    """
    return np.geomspace(start, stop, num).tolist() if num > 1 else [math.sqrt(start * stop)]


def dictionary_axes(spec: Mapping[str, Mapping[str, Any]], tr: float | None = None) -> dict[str, list[float]]:
    """Dictionary axes from config (``{name: {start, stop, num, spacing, units}}``) as value lists (SI).

    ``units: pi/TR`` (omega0) gives start and stop in units of pi/TR, ``tr`` in s.

    >>> dictionary_axes({"T1": {"start": 0.5, "stop": 2.0, "num": 3, "spacing": "log"}})
    {'T1': [0.5, 1.0, 2.0]}
    >>> [round(v, 1) for v in dictionary_axes({"omega0": {"start": -0.5, "stop": 0.5, "num": 3, "units": "pi/TR"}}, 3.5e-3)["omega0"]]
    [-448.8, 0.0, 448.8]
    """
    out = {}
    for name, s in spec.items():
        scale = 1.0
        if s.get("units") == "pi/TR":
            if name != "omega0":
                raise ValueError(f"nlls.dictionary.{name}: units pi/TR are for omega0 only")
            if tr is None:
                raise ValueError(f"nlls.dictionary.{name}: units pi/TR need the pulse train's TR")
            scale = math.pi / float(tr)
        elif s.get("units") is not None:
            raise ValueError(f"nlls.dictionary.{name}: unknown units {s['units']!r}; expected pi/TR or none (SI)")
        start, stop = scale * float(s["start"]), scale * float(s["stop"])
        if s.get("spacing", "linear") == "log":
            out[name] = geometric(start, stop, int(s["num"]))
        else:
            out[name] = np.linspace(start, stop, int(s["num"])).tolist()
    return out
