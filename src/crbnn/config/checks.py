"""Consistency checks of a whole (schema-validated) configuration, run before any job starts.

The JSON schemas in ``workflow/schemas`` check every key on its own; :func:`check_config` checks
what a schema cannot express: the priors (low < high, positive supports), the parameter lists of
``model``, ``nlls`` and ``evaluate``, the estimation regime (:func:`crbnn.config.regime.check_regime`), the
evaluation grids, priors, NLLS settings and phantoms against the ``r2sl`` table, and, when the
pulse-train file can be read at parse time, its TR and its pulses against the ``r2sl`` grid.
:func:`validate_config` runs both, the schemas (defaults filled in) and then :func:`check_config`;
``workflow/rules/common.smk`` calls it at parse time.  Each error is a :class:`ConfigError` whose
message starts with the offending key (``priors.parameters.T1: ...``).

>>> check_config({"sequence": {"source": "public", "tr": None}})  # TR of the public train
0.0035
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crbnn.config.regime import RegimeError, check_regime, phantom_regions
from crbnn.data.sequence import PUBLIC_TR, SequenceError, check_in_r2sl_grid, load_sequence

#: File name of the public pulse train (crbnn.data.inputs.INPUTS).
PUBLIC_SEQUENCE = "control_MT_v3p2_TR3p5ms_discretized.mat"
TISSUE = ("m0s", "T1", "T2f", "Rex", "T2s", "omega0", "B1")
#: Relative tolerance of range comparisons (the R2sl lookup allows the same).
RTOL = 1e-9


class ConfigError(ValueError):
    """An inconsistent configuration; the message starts with the offending key."""


def prior_support(spec: Mapping[str, Any], name: str, tr: float | None) -> tuple[float, float]:
    """(low, high) of the values a prior can draw, in SI units (``transform`` and ``units`` applied).

    Raises :class:`ConfigError` for ``low >= high``, a loguniform prior with ``low <= 0`` or a
    reciprocal prior whose support includes values <= 0.

    >>> prior_support({"dist": "uniform", "low": 4.0, "high": 50.0, "transform": "reciprocal"}, "T2f", None)
    (0.02, 0.25)
    >>> prior_support({"dist": "uniform", "low": 2.5, "high": 0.4}, "T1", None)
    Traceback (most recent call last):
    ...
    crbnn.config.checks.ConfigError: priors.parameters.T1: low = 2.5 is not below high = 0.4; a prior needs low < high
    """
    key = f"priors.parameters.{name}"
    scale = 1.0
    if spec.get("units", "SI") == "pi/TR":
        if tr is None:
            raise ConfigError(f"{key}: units 'pi/TR' need the pulse train's TR (set sequence.tr or state it in the file)")
        scale = math.pi / tr
    if spec["dist"] == "fixed":
        lo = hi = float(spec["value"])
    else:
        lo, hi = float(spec["low"]), float(spec["high"])
        if not lo < hi:
            raise ConfigError(f"{key}: low = {spec['low']} is not below high = {spec['high']}; a prior needs low < high")
        if spec["dist"] == "loguniform" and lo <= 0:
            raise ConfigError(f"{key}: a loguniform prior needs low > 0, got low = {spec['low']}")
    lo, hi = lo * scale, hi * scale
    if spec.get("transform", "none") == "reciprocal":
        if lo <= 0:
            raise ConfigError(f"{key}: 'transform: reciprocal' needs values > 0 (the prior of 1/{name}), got low = {lo:g}")
        lo, hi = 1.0 / hi, 1.0 / lo
    return lo, hi


def _outside(value: float, lo: float, hi: float) -> bool:
    return value < lo - abs(lo) * RTOL or value > hi + abs(hi) * RTOL


def _check_parameter_lists(config: Mapping[str, Any]) -> None:
    model = config.get("model", {})
    estimated = list(model.get("estimated", ["m0s", "T1", "T2f"]))
    not_tissue = [p for p in estimated if p not in TISSUE]
    if not_tissue:
        raise ConfigError(f"model.estimated: {not_tissue} cannot be network outputs; choose from {list(TISSUE)}")
    nlls = config.get("nlls", {})
    for name, pair in nlls.get("bounds", {}).items():
        if not float(pair[0]) < float(pair[1]):
            raise ConfigError(f"nlls.bounds.{name}: lower bound {pair[0]} is not below upper bound {pair[1]}")
    losses = config.get("train", {}).get("losses")
    estimators = config.get("evaluate", {}).get("estimators")
    if losses is not None and estimators is not None:
        untrained = [e for e in estimators if e != "nlls" and e not in losses]
        if untrained:
            raise ConfigError(f"evaluate.estimators: names {untrained}, which train.losses ({list(losses)}) does not train")


def _check_r2sl_coverage(config: Mapping[str, Any], tr: float | None) -> None:
    grid = config.get("r2sl", {})
    for name in ("trf", "t2s"):
        lo, hi = grid.get(f"{name}_min"), grid.get(f"{name}_max")
        if lo is not None and hi is not None and not lo < hi:
            raise ConfigError(f"r2sl.{name}_min: {lo} is not below r2sl.{name}_max = {hi}")
    if "t2s_min" not in grid:
        return
    ranges = {"T2s": (grid["t2s_min"], grid["t2s_max"], "r2sl.t2s_min", "r2sl.t2s_max"),
              "B1": (0.0, grid["b1_max"], "0", "r2sl.b1_max")}
    priors = config.get("priors", {}).get("parameters", {})
    supports = {name: prior_support(spec, name, tr) for name, spec in priors.items()}
    checks: list[tuple[str, str, float]] = []
    for name in ranges:
        if name in supports:
            checks += [(f"priors.parameters.{name}", name, v) for v in supports[name]]
        bounds = config.get("nlls", {}).get("bounds", {})
        if name in bounds:
            checks += [(f"nlls.bounds.{name}", name, float(v)) for v in bounds[name]]
    grids = config.get("grids", {})
    for name, value in grids.get("fixed", {}).items():
        if name in ranges:
            checks.append((f"grids.fixed.{name}", name, float(value)))
    for gname, gspec in grids.get("sets", {}).items():
        for name, axis in gspec.get("axes", {}).items():
            if name in ranges:
                checks += [(f"grids.sets.{gname}.axes.{name}", name, float(axis[k])) for k in ("start", "stop")]
    for name, axis in config.get("nlls", {}).get("dictionary", {}).items():
        if name in ranges:
            checks += [(f"nlls.dictionary.{name}", name, float(axis[k])) for k in ("start", "stop")]
    phantom = config.get("phantom", {})
    checks += [("phantom.b1_range", "B1", float(v)) for v in phantom.get("b1_range", [])]
    for key, region in _phantom_regions(phantom):
        if "T2s" in region:
            checks.append((f"{key}.T2s", "T2s", float(region["T2s"])))
    for key, name, value in checks:
        lo, hi, lo_key, hi_key = ranges[name]
        if _outside(value, lo, hi):
            raise ConfigError(
                f"{key}: {name} = {value:g} lies outside the R2sl table's range [{lo_key}, {hi_key}] = [{lo:g}, {hi:g}]; "
                "widen the r2sl grid or narrow the value"
            )


def _phantom_regions(phantom: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(config key, region) of every tissue region of the phantoms."""
    return [(f"phantom.{key}", region) for key, region in phantom_regions(phantom)]


def _check_phantom(config: Mapping[str, Any]) -> None:
    for key, region in _phantom_regions(config.get("phantom", {})):
        if "T2f" in region and "T1" in region and not region["T2f"] < region["T1"]:
            raise ConfigError(f"{key}: T2f = {region['T2f']} s is not below T1 = {region['T1']} s (the model needs T2f < T1)")


def _sequence_path(config: Mapping[str, Any], base: Path) -> Path | None:
    """The pulse-train file if it can be read now (None for the public train not fetched yet)."""
    seq = config["sequence"]
    if seq.get("source", "public") == "file":
        p = Path(seq["file"])
        p = p if p.is_absolute() else base / p
        if not p.is_file():
            raise ConfigError(f"sequence.file: pulse-train file {seq['file']} not found (relative paths start at {base})")
        return p
    candidates = [base / "resources" / "inputs" / PUBLIC_SEQUENCE]
    data_dir = config.get("inputs", {}).get("data_dir")
    if data_dir:
        candidates.append(Path(data_dir) / PUBLIC_SEQUENCE)
    return next((p for p in candidates if p.is_file()), None)


def resolve_tr(config: Mapping[str, Any], base: str | Path = ".") -> float | None:
    """The pulse train's TR in s as the workflow will use it.

    ``sequence.tr`` null means "from the file": the plain/HDF5 file's own TR, and 3.5 ms for the
    public control file (which stores none).  An explicit ``sequence.tr`` must agree with a TR the
    file states.  Reads the user's file (it must exist); returns None only when the TR cannot be
    known before a job runs (never in practice).
    """
    seq = config["sequence"]
    explicit = seq.get("tr")
    if seq.get("source", "public") == "public":
        return float(explicit) if explicit is not None else PUBLIC_TR
    path = _sequence_path(config, Path(base))
    try:
        return load_sequence(path, tr=explicit).tr  # type: ignore[arg-type]
    except SequenceError as e:
        raise ConfigError(f"sequence.file: {e}") from None


def _check_pulses(config: Mapping[str, Any], tr: float | None, base: Path) -> None:
    path = _sequence_path(config, base)
    if path is None or "trf_min" not in config.get("r2sl", {}):
        return
    try:
        seq = load_sequence(path, tr=tr)
        check_in_r2sl_grid(seq, config["r2sl"])
    except SequenceError as e:
        key = "sequence.file" if config["sequence"].get("source") == "file" else "r2sl"
        raise ConfigError(f"{key}: {e}") from None


def _schema_error(err: Exception, where: str, schema: Path) -> ConfigError:
    cause = err.__cause__ or err.__context__  # the jsonschema ValidationError
    if not hasattr(cause, "absolute_path"):
        return ConfigError(f"{where or '<top level>'}: {err} (schema {schema.name})")
    key = ".".join([where, *map(str, cause.absolute_path)]) if where else ".".join(map(str, cause.absolute_path))
    return ConfigError(f"{key or '<top level>'}: invalid value: {cause.message} (schema {schema.name})")


def validate_config(config: dict[str, Any], schema_dir: str | Path, base: str | Path = ".") -> float | None:
    """Validate ``config`` in place: the top level and every section with ``<section>.schema.yaml``
    in ``schema_dir`` (defaults filled in), then :func:`check_config`.  Returns the resolved TR (s).

    Raises:
        ConfigError: the first schema violation or inconsistency, naming the key.
    """
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    schema_dir = Path(schema_dir)
    schemas = [schema_dir / "config.schema.yaml"] + [
        p for p in sorted(schema_dir.glob("*.schema.yaml")) if p.name != "config.schema.yaml"
    ]
    for schema in schemas:
        section = schema.name.removesuffix(".schema.yaml")
        where = "" if section == "config" else section
        data = config if section == "config" else config.setdefault(section, {})
        try:
            validate(data, str(schema), set_default=True)
        except WorkflowError as e:
            raise _schema_error(e, where, schema) from None
    return check_config(config, base)


def check_config(config: Mapping[str, Any], base: str | Path = ".") -> float | None:
    """Run every cross-section check; return the resolved TR (s) of the pulse train.

    ``base`` is the working directory relative paths start from (the workflow's).  ``config`` is a
    schema-validated config with defaults filled in; missing sections are skipped.

    Raises:
        ConfigError: the first inconsistency, its message starting with the offending key.
    """
    base = Path(base)
    seq = config.get("sequence", {})
    if seq.get("source") == "file" and config.get("basis", {}).get("source", "public") == "public":
        raise ConfigError(
            "basis.source: 'public' belongs to the public pulse train; with sequence.source 'file' set basis.source: computed"
        )
    tr = resolve_tr(config, base) if seq else None
    priors = config.get("priors", {}).get("parameters", {})
    for name, spec in priors.items():
        prior_support(spec, name, tr)
    _check_parameter_lists(config)
    _check_r2sl_coverage(config, tr)
    if "model" in config and "priors" in config:
        try:
            check_regime(config)  # estimated / nuisance / known parameters agree in every section
        except RegimeError as e:
            raise ConfigError(str(e)) from None
    _check_phantom(config)
    _check_nlls_bounds(config, tr)
    if seq:
        _check_pulses(config, tr, base)
    return tr


def _check_nlls_bounds(config: Mapping[str, Any], tr: float | None) -> None:
    """Every fitted parameter has NLLS bounds (its prior's support or ``nlls.bounds``), at parse time."""
    if "nlls" not in config or "priors" not in config or tr is None:
        return
    from crbnn.config.settings import nlls_bounds

    try:
        nlls_bounds(config, tr)
    except ValueError as e:
        raise ConfigError(f"nlls.bounds: {e}") from None

