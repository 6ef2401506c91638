"""Training settings of one network (TrainSettings) from the config's train section.

The defaults have one home: ``workflow/schemas/train.schema.yaml``.  The workflow validates the
config against it (defaults filled in) and passes complete settings; :meth:`TrainSettings.from_dict`
fills any key a caller leaves out (tests, benchmarks) from the same schema (:func:`schema_defaults`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from crbnn.learn.losses import LOSSES

#: The schema of the config's ``train`` section: the one home of the training defaults.
TRAIN_SCHEMA = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "train.schema.yaml"

NORMALIZATIONS = ("l2", "first_coefficient")
#: Distributions of the training ``|M0|`` in ``m0_range`` (crbnn.learn.training_data.draw_noisy).
M0_DISTRIBUTIONS = ("uniform", "log_uniform")


@dataclass
class TrainSettings:
    """Everything that determines a trained network (the config ``train`` section for one loss).

    Units: ``sigma`` noise standard deviation per real/imaginary part of a coefficient at M0 = 1;
    ``m0_range`` range of ``|M0|`` (dimensionless), ``m0_distribution`` its distribution (``uniform`` or
    ``log_uniform``); ``lr`` learning rate; ``lr_step_epochs`` epochs
    between multiplications of the learning rate by ``lr_gamma``; ``batch_size`` signals per batch
    (each with ``realizations`` noise draws for the ``bias_reduced`` loss).

    Every field is required; :meth:`from_dict` takes the missing ones from the schema defaults.

    Example:
        >>> s = TrainSettings.from_dict({"epochs": 3, "network": {"preset": "tiny"}})
        >>> s.epochs, s.lr == schema_defaults()["lr"]
        (3, True)
    """

    seed: int
    sigma: float
    m0_range: tuple[float, float]
    m0_distribution: str
    normalization: str
    network: dict[str, Any]
    epochs: int
    batch_size: int
    lr: float
    lr_step_epochs: int
    lr_gamma: float
    grad_clip: float | None
    grad_clip_factor: float | None
    weight_decay: float
    max_train_samples: int | None
    val_seed: int
    checkpoint_every: int
    realizations: int
    lam: float
    delta: float
    ema_decay: float

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainSettings:
        """Build from a flat dict, missing keys from :func:`schema_defaults`; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; known: {sorted(known)}")
        kw = {**schema_defaults(), **d}
        if "m0_range" in kw:
            kw["m0_range"] = tuple(float(v) for v in kw["m0_range"])
        s = cls(**kw)
        s.validate()
        return s

    def validate(self) -> None:
        """Raise ValueError on values out of range."""
        lo, hi = self.m0_range
        if not (0 < lo <= hi):
            raise ValueError(f"m0_range must satisfy 0 < min <= max, got {self.m0_range}")
        if self.m0_distribution not in M0_DISTRIBUTIONS:
            raise ValueError(f"m0_distribution must be one of {M0_DISTRIBUTIONS}, got {self.m0_distribution!r}")
        if self.sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        if self.epochs < 1 or self.batch_size < 2 or self.lr <= 0 or self.lr_step_epochs < 1:
            raise ValueError("epochs >= 1, batch_size >= 2, lr > 0 and lr_step_epochs >= 1 are required")
        if self.realizations < 2:
            raise ValueError(f"realizations must be >= 2, got {self.realizations}")
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if self.grad_clip_factor is not None and self.grad_clip_factor <= 1.0:
            raise ValueError(f"grad_clip_factor must be > 1 (or None), got {self.grad_clip_factor}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (``m0_range`` as a list)."""
        d = asdict(self)
        d["m0_range"] = list(self.m0_range)
        return d


def settings_for_loss(train_config: Mapping[str, Any], loss: str) -> dict[str, Any]:
    """Flatten the config ``train`` section into the `TrainSettings` dict of one loss.

    ``bias_reduced`` uses the ``bias_reduced`` sub-section's ``epochs``, ``lr`` and ``batch_size``
    where given (fine-tuning), plus its ``realizations``, ``lam`` and ``delta``.

    Example:
        >>> cfg = {"seed": 3, "noise": {"sigma": 0.01, "m0_min": 0.1, "m0_max": 1.0},
        ...        "normalization": "l2", "network": {"preset": "tiny"},
        ...        "optimizer": {"epochs": 5, "lr": 0.01, "batch_size": 64},
        ...        "bias_reduced": {"realizations": 4, "epochs": 2, "lr": 0.001}}
        >>> s = settings_for_loss(cfg, "bias_reduced")
        >>> s["epochs"], s["lr"], s["realizations"], s["batch_size"]
        (2, 0.001, 4, 64)
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose from {LOSSES}")
    c = train_config
    out: dict[str, Any] = {}
    for key in ("seed", "normalization", "max_train_samples", "val_seed", "checkpoint_every"):
        if key in c:
            out[key] = c[key]
    if "network" in c:
        out["network"] = dict(c["network"])
    noise = c.get("noise", {})
    if "sigma" in noise:
        out["sigma"] = noise["sigma"]
    if "m0_distribution" in noise:
        out["m0_distribution"] = noise["m0_distribution"]
    if "m0_min" in noise or "m0_max" in noise:
        dflt = _train_section_defaults()["noise"]
        out["m0_range"] = [noise.get("m0_min", dflt["m0_min"]), noise.get("m0_max", dflt["m0_max"])]
    for key in ("epochs", "batch_size", "lr", "lr_step_epochs", "lr_gamma", "grad_clip", "grad_clip_factor", "weight_decay",
                "ema_decay"):
        if key in c.get("optimizer", {}):
            out[key] = c["optimizer"][key]
    if loss == "bias_reduced":
        br = c.get("bias_reduced", {})
        for key in ("realizations", "lam", "delta"):
            if key in br:
                out[key] = br[key]
        for key in ("epochs", "lr", "batch_size", "lr_step_epochs"):
            if br.get(key) is not None:
                out[key] = br[key]
    return out


def _defaults_of(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The defaults of an object schema's properties, nested objects filled in (as jsonschema's
    ``set_default`` does for an empty section)."""
    out: dict[str, Any] = {}
    for key, sub in schema.get("properties", {}).items():
        if "properties" in sub:
            out[key] = {**(sub.get("default") or {}), **_defaults_of(sub)}
        elif "default" in sub:
            out[key] = sub["default"]
    return out


@functools.cache
def _train_section_defaults() -> dict[str, Any]:
    import yaml

    if not TRAIN_SCHEMA.is_file():
        raise FileNotFoundError(f"{TRAIN_SCHEMA}: the training defaults live in this schema; run from a checkout "
                                "of the repository (pip install -e .) or pass every training setting")
    return _defaults_of(yaml.safe_load(TRAIN_SCHEMA.read_text()))


def schema_defaults() -> dict[str, Any]:
    """Every `TrainSettings` field at its default of ``workflow/schemas/train.schema.yaml``: the
    ``optimizer`` section's epochs, lr and batch size (not the fine-tuning ones of ``bias_reduced``),
    the ``bias_reduced`` section's realizations, lam and delta.

    >>> d = schema_defaults()
    >>> sorted(d) == sorted(f.name for f in fields(TrainSettings))
    True
    """
    section = _train_section_defaults()
    out = settings_for_loss(section, "crb")
    br = section["bias_reduced"]
    out.update(realizations=br["realizations"], lam=br["lam"], delta=br["delta"])
    out.setdefault("max_train_samples", None)
    return {**out, "m0_range": tuple(out["m0_range"]), "network": dict(out["network"])}
