"""Parameter names and units: the one table that every stage reads (docs/physics.md section 1).

Two parametrizations describe the same signal model: the general one (real M0 and the relaxation
rates) and the paper's constrained one (R1f = R1s = 1/T1, T2f = 1/R2f, complex M0).  The tissue
parameters are the columns of a parameter table; M0 is not a tissue parameter.

>>> units_of(("m0s", "T1", "omega0"))
('1', 's', 'rad/s')
>>> display_unit("B1"), display_unit("T2f")
('', 's')
"""

from __future__ import annotations

from collections.abc import Iterable

#: SI unit of every parameter name of either parametrization ("1": dimensionless).
UNITS: dict[str, str] = {
    "M0": "a.u.",
    "M0_re": "a.u.",
    "M0_im": "a.u.",
    "m0s": "1",
    "R1f": "1/s",
    "R2f": "1/s",
    "R1s": "1/s",
    "T1": "s",
    "T2f": "s",
    "Rex": "1/s",
    "T2s": "s",
    "omega0": "rad/s",
    "B1": "1",
}

#: General parametrization, real M0.
GENERAL_PARAMETERS: tuple[str, ...] = ("M0", "m0s", "R1f", "R2f", "Rex", "R1s", "T2s", "omega0", "B1")
#: The paper's constrained parametrization: R1f = R1s = 1/T1, T2f = 1/R2f, complex M0.
PAPER_PARAMETERS: tuple[str, ...] = ("M0_re", "M0_im", "m0s", "T1", "T2f", "Rex", "T2s", "omega0", "B1")
#: Tissue parameters of the paper model: the columns of a parameter table (M0 excluded).
TISSUE_PARAMETERS: tuple[str, ...] = ("m0s", "T1", "T2f", "Rex", "T2s", "omega0", "B1")
#: The paper parameters that are not tissue parameters (complex M0 as two real ones).
M0_PARAMETERS: tuple[str, ...] = ("M0_re", "M0_im")
#: The paper's regime (Zhang et al., MRM 2022): the estimated parameters (network outputs) and the
#: unknown nuisance parameters (complex M0, omega0, B1; Rex and T2s known).  Library defaults only:
#: the workflow reads ``config["model"]["estimated"]`` / ``["nuisance"]``, data sets and model files
#: their ``estimated`` / ``nuisance`` attributes, so that another regime runs end to end.
PAPER_ESTIMATED: tuple[str, ...] = ("m0s", "T1", "T2f")
PAPER_NUISANCE: tuple[str, ...] = (*M0_PARAMETERS, "omega0", "B1")


#: How figures and tables show a tissue parameter: its (LaTeX/mathtext) label, the unit shown and the
#: factor from SI to that unit (T2f in ms, T2s in us).
LABELS: dict[str, str] = {
    "m0s": r"$m_0^s$",
    "T1": r"$T_1$",
    "T2f": r"$T_2^f$",
    "Rex": r"$R_x$",
    "T2s": r"$T_2^s$",
    "omega0": r"$\omega_0$",
    "B1": r"$B_1$",
}
DISPLAY_UNITS: dict[str, str] = {"m0s": "", "T1": "s", "T2f": "ms", "Rex": "1/s", "T2s": "µs", "omega0": "rad/s", "B1": ""}
DISPLAY_SCALE: dict[str, float] = {"m0s": 1.0, "T1": 1.0, "T2f": 1e3, "Rex": 1.0, "T2s": 1e6, "omega0": 1.0, "B1": 1.0}


def units_of(names: Iterable[str]) -> tuple[str, ...]:
    """SI units of parameter ``names`` (a ``KeyError`` names an unknown parameter)."""
    out = []
    for name in names:
        if name not in UNITS:
            raise KeyError(f"unknown parameter {name!r}; known: {', '.join(UNITS)}")
        out.append(UNITS[name])
    return tuple(out)


def display_unit(name: str) -> str:
    """The unit as printed next to a value: empty for dimensionless parameters."""
    unit = UNITS.get(name, "")
    return "" if unit == "1" else unit
