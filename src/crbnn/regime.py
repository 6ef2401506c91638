"""The estimation regime: which tissue parameters are estimated, unknown (nuisance) or known.

The paper's study (Zhang et al., MRM 2022) estimates m0s, T1 and T2f with complex M0, omega0 and B1
as unknown nuisance parameters, and holds Rex and T2s at known values.  Which parameters are unknown
decides the Fisher matrix and therefore every CRB of the study: with Rex and T2s unknown as well,
sqrt(CRB(m0s)) at SNR 50 is 3-6 times larger (as wide as the prior), and the study no longer tests
the paper's claim.  ``config/config.yaml`` selects the regime with ``model.estimated`` and
``model.nuisance``; a tissue parameter listed in neither is *known*.  Its prior must be ``fixed``;
that value then enters the training data, the grids, the phantoms, the NLLS fits (which do not fit
it) and the model file, so that every stage works in one regime.  :func:`check_regime` checks this
before any job runs.

Example:
    >>> known_parameters(["m0s", "T1", "T2f"], ["M0_re", "M0_im", "omega0", "B1"])
    ('Rex', 'T2s')
    >>> priors = {"Rex": {"dist": "fixed", "value": 13.6}, "T2s": {"dist": "fixed", "value": 1.25e-5}}
    >>> known_values(priors, ["m0s", "T1", "T2f"], ["M0_re", "M0_im", "omega0", "B1"])
    {'Rex': 13.6, 'T2s': 1.25e-05}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .sampling import TISSUE_PARAMETERS

#: Parameters of the paper parametrization that are not tissue parameters (complex M0).
M0_PARAMETERS: tuple[str, ...] = ("M0_re", "M0_im")


class RegimeError(ValueError):
    """The config's parameter lists, priors, grids or NLLS settings disagree about the regime."""


def known_parameters(estimated: Sequence[str], nuisance: Sequence[str]) -> tuple[str, ...]:
    """Tissue parameters that are neither estimated nor nuisance (held at known values), in tissue order."""
    unknown = set(estimated) | set(nuisance)
    return tuple(p for p in TISSUE_PARAMETERS if p not in unknown)


def unknown_tissue_parameters(estimated: Sequence[str], nuisance: Sequence[str]) -> tuple[str, ...]:
    """Tissue parameters an estimator of this regime must fit (estimated and nuisance), in tissue order."""
    unknown = set(estimated) | set(nuisance)
    return tuple(p for p in TISSUE_PARAMETERS if p in unknown)


def known_values(
    priors: Mapping[str, Mapping[str, Any]], estimated: Sequence[str], nuisance: Sequence[str]
) -> dict[str, float]:
    """``{name: value}`` of the known parameters, from their ``fixed`` priors (SI units).

    Raises:
        RegimeError: a known parameter whose prior is not ``fixed`` or not in SI units.
    """
    out: dict[str, float] = {}
    for p in known_parameters(estimated, nuisance):
        spec = priors.get(p)
        if spec is None or spec.get("dist") != "fixed":
            dist = None if spec is None else spec.get("dist")
            raise RegimeError(
                f"priors.parameters.{p}: {p} is neither in model.estimated nor in model.nuisance, so it is "
                f"known and its prior must be 'dist: fixed' (found {dist!r}); list it in model.nuisance "
                "to treat it as unknown"
            )
        if spec.get("units", "SI") != "SI" or spec.get("transform", "none") != "none":
            raise RegimeError(
                f"priors.parameters.{p}: a known parameter's fixed value must be in SI units without a transform"
            )
        out[p] = float(spec["value"])
    return out


def _same(a: float, b: float) -> bool:
    return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)


def phantom_regions(phantom: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """``(config key, region values)`` of every phantom region in the config section ``phantom``."""
    out: list[tuple[str, Mapping[str, Any]]] = []
    vials = phantom.get("vials", {})
    if "background" in vials:
        out.append(("vials.background", vials["background"]))
    out += [(f"vials.vials[{k}]", r) for k, r in enumerate(vials.get("vials", []))]
    out += [(f"brain.{name}", r) for name, r in phantom.get("brain", {}).items()]
    return out


def check_regime(config: Mapping[str, Any]) -> dict[str, float]:
    """Check that every section of a validated config works in the regime of ``config['model']``.

    Checks: no parameter both estimated and nuisance; known parameters have ``fixed`` priors;
    ``nlls.fit`` is exactly the unknown tissue parameters; ``nlls.nominal``, ``grids.fixed`` and
    phantom regions agree with the known values; no grid axis varies a known parameter.
    Returns the known values.  Each error names the config key, what it holds and what is expected.

    Example:
        >>> cfg = {"model": {"estimated": ["m0s"], "nuisance": ["m0s"]}}
        >>> check_regime(cfg)
        Traceback (most recent call last):
        ...
        crbnn.regime.RegimeError: model.estimated and model.nuisance both list ['m0s']; a parameter is either estimated or nuisance
    """
    model = config["model"]
    est, nui = list(model["estimated"]), list(model["nuisance"])
    both = [p for p in est if p in nui]
    if both:
        raise RegimeError(
            f"model.estimated and model.nuisance both list {both}; a parameter is either estimated or nuisance"
        )
    known = known_values(config["priors"]["parameters"], est, nui)
    unknown = unknown_tissue_parameters(est, nui)
    nlls = config.get("nlls", {})
    if "fit" in nlls and set(nlls["fit"]) != set(unknown):
        raise RegimeError(
            f"nlls.fit = {list(nlls['fit'])} but the model's unknown tissue parameters are {list(unknown)} "
            "(model.estimated + model.nuisance); NLLS must fit the model whose CRB it is compared with"
        )
    for p, v in known.items():
        nominal = nlls.get("nominal", {})
        if p in nominal and not _same(nominal[p], v):
            raise RegimeError(f"nlls.nominal.{p} = {nominal[p]} but {p} is known at priors.parameters.{p}.value = {v}")
        fixed = config.get("grids", {}).get("fixed", {})
        if p in fixed and not _same(fixed[p], v):
            raise RegimeError(f"grids.fixed.{p} = {fixed[p]} but {p} is known at priors.parameters.{p}.value = {v}")
        for g, spec in config.get("grids", {}).get("sets", {}).items():
            if p in spec.get("axes", {}):
                raise RegimeError(f"grids.sets.{g}.axes varies {p}, which the model holds known")
        for key, r in phantom_regions(config.get("phantom", {})):
            if p in r and not _same(r[p], v):
                raise RegimeError(f"phantom.{key}.{p} = {r[p]} but {p} is known at priors.parameters.{p}.value = {v}")
    return known


def regime_description(estimated: Sequence[str], nuisance: Sequence[str], known: Mapping[str, float]) -> str:
    """One plain-text sentence naming the regime (for the manuscript and summaries).

    >>> regime_description(["m0s", "T1", "T2f"], ["M0_re", "M0_im", "omega0", "B1"], {"Rex": 13.6, "T2s": 1.25e-5})
    'estimated m0s, T1, T2f; unknown nuisance complex M0, omega0, B1; known Rex = 13.6 1/s, T2s = 12.5 us'
    """
    units = {"Rex": (1.0, "1/s"), "T2s": (1e6, "us"), "T1": (1.0, "s"), "T2f": (1e3, "ms"), "omega0": (1.0, "rad/s")}
    nui = [p for p in nuisance if p not in M0_PARAMETERS]
    if set(M0_PARAMETERS) <= set(nuisance):
        nui = ["complex M0", *nui]
    kn = []
    for p, v in known.items():
        scale, unit = units.get(p, (1.0, ""))
        kn.append(f"{p} = {v * scale:.4g} {unit}".rstrip())
    text = f"estimated {', '.join(estimated)}; unknown nuisance {', '.join(nui) or 'none'}"
    return text + (f"; known {', '.join(kn)}" if kn else "; no parameter known")


#: Reference points of the regime comparison (SI; the other tissue parameters from ``grids.fixed``):
#: low, white-matter-like and high m0s on the m0s x T1 grid, and a T2f point of the T1 x T2f grid.
REFERENCE_POINTS: tuple[dict[str, float], ...] = (
    {"m0s": 0.05, "T1": 1.3},
    {"m0s": 0.13, "T1": 1.3},
    {"m0s": 0.20, "T1": 1.8},
    {"T1": 1.5, "T2f": 0.10},
)
#: Every tissue parameter unknown besides complex M0 (the nine-unknown regime).
ALL_NUISANCE: tuple[str, ...] = ("M0_re", "M0_im", "Rex", "T2s", "omega0", "B1")


def compare_regimes(
    sequence: Any,
    basis_u: Any,
    fixed: Mapping[str, float],
    estimated: Sequence[str],
    nuisance: Sequence[str],
    *,
    M0_abs: float,
    sigma: float,
    points: Sequence[Mapping[str, float]] = REFERENCE_POINTS,
    r2sl: Any = None,
) -> list[dict[str, Any]]:
    """sqrt(CRB) of the estimated parameters at reference points in the config's regime and with all
    nine parameters unknown, at ``|M0| = M0_abs`` and noise ``sigma``.

    Returns one dict per point: ``point`` (its tissue values), ``sqrt_crb`` and ``sqrt_crb_all_unknown``
    (``{parameter: value}``, SI units) and ``ratio`` (all unknown / regime).
    """
    import numpy as np

    from .simulation import simulate_coefficients

    rows = np.array([[float({**fixed, **pt}[p]) for p in TISSUE_PARAMETERS] for pt in points])
    scale = float(sigma) / float(M0_abs)
    out = []
    crbs = {}
    for name, nui in (("regime", tuple(nuisance)), ("all", ALL_NUISANCE)):
        res = simulate_coefficients(np.asarray(sequence.alpha), np.asarray(sequence.trf), float(sequence.tr),
                                    np.asarray(basis_u), rows, tuple(estimated), nui, r2sl=r2sl)
        crbs[name] = np.sqrt(res["crb"]) * scale
    for i, pt in enumerate(points):
        out.append({
            "point": {p: float(v) for p, v in pt.items()},
            "sqrt_crb": {p: float(crbs["regime"][i, k]) for k, p in enumerate(estimated)},
            "sqrt_crb_all_unknown": {p: float(crbs["all"][i, k]) for k, p in enumerate(estimated)},
            "ratio": {p: float(crbs["all"][i, k] / crbs["regime"][i, k]) for k, p in enumerate(estimated)},
        })
    return out
