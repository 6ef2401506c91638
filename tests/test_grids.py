"""Tests of the test-grid tables."""

from __future__ import annotations

import numpy as np
import pytest

from crbnn.common.parameters import TISSUE_PARAMETERS
from crbnn.data.datasets import read_parameter_table
from crbnn.data.test_grids import make_grid, read_axes, write_grid

FIXED = {"m0s": 0.15, "T1": 1.0, "T2f": 0.07, "Rex": 15.0, "T2s": 12e-6, "omega0": 0.0, "B1": 1.0}


def test_table_layout_and_roundtrip(tmp_path):
    g = make_grid("m0s_T1", {"m0s": {"start": 0.01, "stop": 0.25, "num": 3},
                             "T1": {"start": 0.65, "stop": 2.0, "num": 4}}, FIXED)
    assert g.shape == (3, 4)
    t = g.table()
    assert t.shape == (12, 7) and t.dtype == np.float64
    grid = t.reshape(3, 4, 7)
    np.testing.assert_allclose(grid[:, 0, 0], [0.01, 0.13, 0.25])
    np.testing.assert_allclose(grid[0, :, 1], np.linspace(0.65, 2.0, 4))
    for p in ("T2f", "Rex", "T2s", "omega0", "B1"):
        assert np.all(t[:, TISSUE_PARAMETERS.index(p)] == FIXED[p])
    path = tmp_path / "grid_m0s_T1.h5"
    write_grid(path, g)
    table, attrs = read_parameter_table(path)
    np.testing.assert_array_equal(table, t)
    axes = read_axes(attrs)
    assert [a for a, _ in axes] == ["m0s", "T1"]  # grid order kept, not sorted
    np.testing.assert_allclose(axes[1][1], np.linspace(0.65, 2.0, 4))


def test_errors():
    with pytest.raises(ValueError, match="not a tissue parameter"):
        make_grid("x", {"M0": {"start": 0, "stop": 1, "num": 2}}, FIXED)
    with pytest.raises(ValueError, match="no fixed value"):
        make_grid("x", {"T1": {"start": 0.5, "stop": 1, "num": 2}}, {"m0s": 0.1})


def test_log_axis():
    g = make_grid("x", {"T2f": {"start": 0.03, "stop": 0.12, "num": 3, "spacing": "log"}}, FIXED)
    np.testing.assert_allclose(g.axes[0].values, [0.03, 0.06, 0.12])
