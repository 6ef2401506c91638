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

from crbnn.common.parameters import PAPER_ESTIMATED, PAPER_NUISANCE, TISSUE_PARAMETERS
from crbnn.config.regime import RegimeError, check_regime, phantom_regions
from crbnn.data.inputs import INVIVO_RANK, INVIVO_SHAPE
from crbnn.data.sequence import PUBLIC_TR, SequenceError, check_in_r2sl_grid, load_sequence

#: File name of the public pulse train (crbnn.data.inputs.INPUTS).
PUBLIC_SEQUENCE = "control_MT_v3p2_TR3p5ms_discretized.mat"
#: Relative tolerance of range comparisons (the R2sl lookup allows the same).
RTOL = 1e-9


class ConfigError(ValueError):
    """An inconsistent configuration; the message starts with the offending key."""


def check_finite(node: Any, key: str = "") -> None:
    """Every number of the config is finite (``.inf`` and ``.nan`` are YAML numbers a schema's
    minimum/maximum let through).

    >>> check_finite({"priors": {"parameters": {"T1": {"low": 0.4, "high": float("inf")}}}})
    Traceback (most recent call last):
    ...
    crbnn.config.checks.ConfigError: priors.parameters.T1.high: inf is not a finite number; every number of the config must be finite
    """
    if isinstance(node, bool):
        return
    if isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"{key or '<top level>'}: {node} is not a finite number; every number of the config must be finite")
    if isinstance(node, Mapping):
        for k, v in node.items():
            check_finite(v, f"{key}.{k}" if key else str(k))
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            check_finite(v, f"{key}[{i}]")


def _check_ordered(config: Mapping[str, Any]) -> None:
    """Ranges given as two keys or a pair must have low < high (naming both keys)."""
    noise = config.get("train", {}).get("noise", {})
    if "m0_min" in noise and "m0_max" in noise and not float(noise["m0_min"]) < float(noise["m0_max"]):
        raise ConfigError(f"train.noise.m0_min: {noise['m0_min']} is not below train.noise.m0_max = {noise['m0_max']}; "
                          "the training |M0| is drawn from [m0_min, m0_max]")
    pairs = [("evaluate.test_set.m0_range", config.get("evaluate", {}).get("test_set", {}).get("m0_range")),
             ("phantom.b1_range", config.get("phantom", {}).get("b1_range"))]
    for key, pair in pairs:
        if pair is not None and len(pair) == 2 and not float(pair[0]) < float(pair[1]):
            raise ConfigError(f"{key}: [{pair[0]}, {pair[1]}] is not a range low < high")
    axes = [(f"grids.sets.{g}.axes.{p}", a) for g, s in config.get("grids", {}).get("sets", {}).items()
            for p, a in s.get("axes", {}).items()]
    axes += [(f"nlls.dictionary.{p}", a) for p, a in config.get("nlls", {}).get("dictionary", {}).items()]
    for key, axis in axes:
        if int(axis.get("num", 2)) > 1 and not float(axis["start"]) < float(axis["stop"]):
            raise ConfigError(f"{key}: start = {axis['start']} is not below stop = {axis['stop']} ({axis.get('num')} points)")


def _check_grid_values(config: Mapping[str, Any], tr: float | None) -> None:
    """grids.fixed values and grid axes of fitted parameters lie inside the NLLS bounds (else every
    NLLS estimate sits at the bound) and, for the networks' outputs, inside the priors' support."""
    if "grids" not in config or "nlls" not in config or "priors" not in config or tr is None:
        return
    from crbnn.config.settings import nlls_bounds

    try:
        bounds = nlls_bounds(config, tr)
    except (KeyError, ValueError):
        return  # _check_nlls_bounds names it
    priors = config["priors"].get("parameters", {})
    estimated = config.get("model", {}).get("estimated", [])
    grids = config["grids"]
    values = [(f"grids.fixed.{p}", p, float(v)) for p, v in grids.get("fixed", {}).items()]
    for g, spec in grids.get("sets", {}).items():
        for p, axis in spec.get("axes", {}).items():
            values += [(f"grids.sets.{g}.axes.{p}.{k}", p, float(axis[k])) for k in ("start", "stop")]
    for key, p, v in values:
        if p in bounds and _outside(v, *bounds[p]):
            lo, hi = bounds[p]
            raise ConfigError(f"{key}: {p} = {v:g} lies outside the NLLS bounds [{lo:g}, {hi:g}] (nlls.bounds.{p} or "
                              f"priors.parameters.{p}); every NLLS estimate would sit at a bound: move the value inside")
        if p in estimated and p in priors and priors[p].get("dist") != "fixed":
            lo, hi = prior_support(priors[p], p, tr)
            if _outside(v, lo, hi):
                raise ConfigError(f"{key}: {p} = {v:g} lies outside the prior's support [{lo:g}, {hi:g}] "
                                  f"(priors.parameters.{p}); the networks never saw such values")


def _check_tables(config: Mapping[str, Any]) -> None:
    """Each table has at least one row per shard; the training set fills at least one batch."""
    sim = config.get("simulate", {})
    for name, table in sim.get("tables", {}).items():
        if int(table["shards"]) > int(table["n"]):
            raise ConfigError(f"simulate.tables.{name}.shards: {table['shards']} shards for n = {table['n']} rows; "
                              f"need shards <= n (set simulate.tables.{name}.shards <= {table['n']})")
    train = config.get("train", {})
    n_train = sim.get("tables", {}).get("train", {}).get("n")
    if n_train is None or "optimizer" not in train:
        return
    usable = min(int(n_train), int(train.get("max_train_samples") or n_train))
    batches = [("train.optimizer.batch_size", train["optimizer"].get("batch_size"))]
    if "bias_reduced" in train.get("losses", []):
        batches.append(("train.bias_reduced.batch_size", train.get("bias_reduced", {}).get("batch_size")))
    for key, batch in batches:
        if batch is not None and usable < int(batch):
            which = "simulate.tables.train.n" if usable == int(n_train) else "train.max_train_samples"
            raise ConfigError(f"{which}: {usable} training samples cannot fill one batch of {key} = {batch}; "
                              f"a network trained on them stays untrained: set {which} >= {batch}")
    n_val = sim.get("tables", {}).get("val", {}).get("n")
    if n_val is not None and int(n_val) < 2:
        raise ConfigError(f"simulate.tables.val.n: {n_val} validation samples; need at least 2 (the best epoch is chosen on them)")


def _check_box(key: str, box: Any, shape: tuple[int, int] | None, what: str) -> None:
    if box is None:
        return
    x0, x1, y0, y1 = (int(v) for v in box)
    if not (x0 < x1 and y0 < y1):
        raise ConfigError(f"{key}: box {list(box)} is empty or inverted; a box is [x0, x1, y0, y1] with x0 < x1 and y0 < y1 "
                          "(half-open voxel ranges)")
    if shape is not None and (x1 > shape[0] or y1 > shape[1]):
        raise ConfigError(f"{key}: box {list(box)} lies outside {what} ({shape[0]} x {shape[1]} voxels); "
                          f"need x1 <= {shape[0]} and y1 <= {shape[1]}")


def _check_voxel_selection(key: str, voxels: Mapping[str, Any], shape: tuple[int, int] | None, what: str) -> None:
    """``stride`` and ``box`` leave at least one voxel (crbnn.images.maps.select_voxels: rows and columns
    ``stride // 2, stride // 2 + stride, ...`` inside the box)."""
    stride = int(voxels.get("stride", 1))
    box = voxels.get("box")
    if box is None and shape is None:
        return
    x0, x1, y0, y1 = (int(v) for v in box) if box is not None else (0, shape[0], 0, shape[1])  # type: ignore[index]
    if shape is not None:
        x1, y1 = min(x1, shape[0]), min(y1, shape[1])
    o = stride // 2

    def hit(lo: int, hi: int) -> bool:
        first = o if lo <= o else o + -(-(lo - o) // stride) * stride
        return first < hi

    if not (hit(x0, x1) and hit(y0, y1)):
        raise ConfigError(f"{key}.stride: stride {stride} leaves no voxel of {what} inside box {[x0, x1, y0, y1]} "
                          f"(rows and columns {o}, {o + stride}, ... are used); lower {key}.stride or widen {key}.box")


def _check_images(config: Mapping[str, Any]) -> None:
    """Known image names, boxes inside their images, and the in vivo slice's R against basis.rank."""
    images = config.get("images")
    if not images:
        return
    phantom = config.get("phantom", {})
    kinds = list(phantom.get("kinds", []))
    known = ["invivo", *kinds]
    unknown = [i for i in images.get("images", []) if i not in known]
    if unknown:
        raise ConfigError(f"images.images: {unknown} not known; the images are 'invivo' (the public slice) and the "
                          f"phantoms of phantom.kinds ({kinds}): choose from {known}")
    size = phantom.get("size")
    phantom_shape = (int(size[0]), int(size[1])) if size else None
    mapped = images.get("images", [])
    invivo = "invivo" in mapped
    _check_box("images.invivo_voxels.box", images.get("invivo_voxels", {}).get("box"), INVIVO_SHAPE if invivo else None,
               "the in vivo slice")
    _check_box("images.phantom_voxels.box", images.get("phantom_voxels", {}).get("box"), phantom_shape, "the phantoms")
    for name, box in images.get("regions", {}).items():
        _check_box(f"images.regions.{name}", box, INVIVO_SHAPE if invivo else None, "the in vivo slice")
    for key, shape, what in (("invivo_voxels", INVIVO_SHAPE if invivo else None, "the in vivo slice"),
                             ("phantom_voxels", phantom_shape, "the phantoms")):
        _check_voxel_selection(f"images.{key}", images.get(key, {}), shape, what)
    rank = config.get("basis", {}).get("rank")
    tissue = images.get("tissue", {})
    missing = [r for r in tissue.get("report", []) if r not in tissue.get("classes", [])]
    if missing:
        raise ConfigError(f"images.tissue.report: {missing} not among images.tissue.classes {tissue.get('classes')}; "
                          "report only classes of the mixture")
    too_high = [k for k in tissue.get("features", []) if invivo and rank is not None and int(k) > int(rank)]
    if too_high:
        raise ConfigError(f"images.tissue.features: coefficient(s) {too_high} above basis.rank = {rank}; the contrast "
                          "images Re(c_k / c_1) need k <= basis.rank")
    if invivo and rank is not None and int(rank) != INVIVO_RANK:
        raise ConfigError(f"basis.rank: {rank}, but the public in vivo slice (images.images lists 'invivo') has "
                          f"R = {INVIVO_RANK} coefficients; set basis.rank: {INVIVO_RANK} or remove 'invivo' from images.images")


def _check_basis_size(config: Mapping[str, Any], n_pulses: int | None, where: str) -> None:
    basis = config.get("basis", {})
    rank = basis.get("rank")
    if rank is None:
        return
    if basis.get("source") == "computed" and "dictionary_size" in basis and int(basis["dictionary_size"]) < int(rank):
        raise ConfigError(f"basis.dictionary_size: {basis['dictionary_size']} signals cannot give basis.rank = {rank} "
                          "singular vectors; need dictionary_size >= rank")
    if n_pulses is not None and n_pulses < int(rank):
        raise ConfigError(f"{where}: the pulse train has {n_pulses} pulse(s), fewer than basis.rank = {rank}; a basis of "
                          f"rank R needs at least R pulses (lower basis.rank or use a longer train)")


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
    estimated = list(model.get("estimated", PAPER_ESTIMATED))
    not_tissue = [p for p in estimated if p not in TISSUE_PARAMETERS]
    if not_tissue:
        raise ConfigError(f"model.estimated: {not_tissue} cannot be network outputs; choose from {list(TISSUE_PARAMETERS)}")
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
    key = "sequence.file" if config["sequence"].get("source") == "file" else "r2sl"
    try:
        seq = load_sequence(path, tr=tr)
        check_in_r2sl_grid(seq, config["r2sl"])
    except SequenceError as e:
        raise ConfigError(f"{key}: {e}") from None
    _check_basis_size(config, len(seq.alpha), f"{key}: {path}")


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

    if not isinstance(config, Mapping):
        raise ConfigError(f"<top level>: the configuration is a {type(config).__name__}, not a mapping of sections "
                          "(sequence:, basis:, ...); check the --configfile files")
    check_finite(config)
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
    check_finite(config)
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
    _check_ordered(config)
    _check_grid_values(config, tr)
    _check_tables(config)
    from crbnn.config.resources import check_memory  # resources imports ConfigError from here

    check_memory(config)
    _check_images(config)
    _check_basis_size(config, None, "basis.rank")
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

