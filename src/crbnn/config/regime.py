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

from crbnn.common.parameters import DISPLAY_SCALE, DISPLAY_UNITS, M0_PARAMETERS, TISSUE_PARAMETERS


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
        crbnn.config.regime.RegimeError: model.estimated and model.nuisance both list ['m0s']; a parameter is either estimated or nuisance
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
    'estimated m0s, T1, T2f; unknown nuisance complex M0, omega0, B1; known Rex = 13.6 1/s, T2s = 12.5 µs'

    Values in their display units (:data:`crbnn.common.parameters.DISPLAY_UNITS`).
    """
    nui = [p for p in nuisance if p not in M0_PARAMETERS]
    if set(M0_PARAMETERS) <= set(nuisance):
        nui = ["complex M0", *nui]
    kn = []
    for p, v in known.items():
        scale, unit = DISPLAY_SCALE.get(p, 1.0), DISPLAY_UNITS.get(p, "")
        kn.append(f"{p} = {v * scale:.4g} {unit}".rstrip())
    text = f"estimated {', '.join(estimated)}; unknown nuisance {', '.join(nui) or 'none'}"
    return text + (f"; known {', '.join(kn)}" if kn else "; no parameter known")


def all_nuisance(estimated: Sequence[str]) -> tuple[str, ...]:
    """The nuisance parameters with every parameter unknown: complex M0 and every tissue parameter
    that is not estimated (the nine-unknown regime of the paper's parametrization).

    >>> all_nuisance(["m0s", "T1", "T2f"])
    ('M0_re', 'M0_im', 'Rex', 'T2s', 'omega0', 'B1')
    >>> all_nuisance(["m0s", "T1"])
    ('M0_re', 'M0_im', 'T2f', 'Rex', 'T2s', 'omega0', 'B1')
    """
    return (*M0_PARAMETERS, *[p for p in TISSUE_PARAMETERS if p not in estimated])
