"""Reading the user's config files (YAML or JSON) with errors that name the file, and merging them in
the order Snakemake does (``--configfile a b``: b overrides a, section by section).  The checks of the
merged configuration are in :mod:`crbnn.config.checks`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crbnn.config.checks import ConfigError


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read one config file (YAML or JSON) as a mapping; every failure names the file and what is wrong.

    Snakemake reads ``--configfile`` before the workflow starts and reports a broken file without its
    name (or with a raw traceback); ``crbnn check-config <files>`` calls this to say which one.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "my.yaml")
    ...     _ = open(p, "w").write("- 1\\n- 2\\n")
    ...     read_config_file(p)
    Traceback (most recent call last):
    ...
    crbnn.config.checks.ConfigError: ...my.yaml: a config file must be a mapping of sections (sequence:, basis:, ...) at its top level, got a list
    """
    import yaml

    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: config file not found")
    if not p.is_file():
        raise ConfigError(f"{p}: config file is not a file")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: config file is not text (byte {e.start} is not UTF-8); give a YAML file") from None
    if not text.strip() or all(line.lstrip().startswith("#") or not line.strip() for line in text.splitlines()):
        raise ConfigError(f"{p}: config file is empty; give at least one section (e.g. 'basis: {{rank: 13}}') or leave it out")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{p}: not valid YAML{where} ({problem})") from None
    if not isinstance(data, dict):
        kind = "null" if data is None else type(data).__name__
        raise ConfigError(f"{p}: a config file must be a mapping of sections (sequence:, basis:, ...) at its top level, "
                          f"got a {kind}")
    return data


def merge_config(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge of ``overlay`` into a copy of ``base`` (Snakemake's ``--configfile a b`` semantics)."""
    out = dict(base)
    for key, value in overlay.items():
        out[key] = merge_config(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) else value
    return out
