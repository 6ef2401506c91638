"""Logging set-up for workflow scripts: one log file per rule job plus stderr."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def setup_logging(
    log: str | Path | Sequence[str | Path] | None = None, level: int = logging.INFO, append: bool = False
) -> logging.Logger:
    """Send log records of the ``crbnn`` logger (and the root logger) to ``log`` and stderr.

    ``log`` may be a path, a list of paths (Snakemake's ``snakemake.log``; the first is used), or
    None for stderr only.  ``append``: keep the earlier content (a resumed job) instead of starting
    the file afresh.  Returns the ``crbnn`` logger.  Also routes warnings into the log.

    >>> logger = setup_logging(None)
    >>> logger.name
    'crbnn'
    """
    if log is not None and not isinstance(log, (str, Path)):
        log = list(log)[0] if len(log) else None
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log is not None:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log, mode="a" if append else "w"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    logging.captureWarnings(True)
    return logging.getLogger("crbnn")


class ScriptArgs:
    """Minimal stand-in for Snakemake's script object: ``input``, ``output``, ``params``, ``log``.

    Workflow scripts expose ``main(snakemake)``; to run one without Snakemake (debugging, tests),
    import it and pass ``ScriptArgs(input=..., output=..., params=..., log=[...])``.

    >>> s = ScriptArgs(input={"a": "x.h5"}, params={"tr": 0.0035})
    >>> s.input.a, s.params["tr"], s.threads
    ('x.h5', 0.0035, 1)
    """

    class _NS(dict[str, Any]):
        def __getattr__(self, key: str) -> Any:
            try:
                return self[key]
            except KeyError as e:
                raise AttributeError(key) from e

    def __init__(
        self,
        input: dict[str, Any] | None = None,
        output: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        log: list[str] | None = None,
        threads: int = 1,
        wildcards: dict[str, Any] | None = None,
    ) -> None:
        self.input = self._NS(input or {})
        self.output = self._NS(output or {})
        self.params = self._NS(params or {})
        self.wildcards = self._NS(wildcards or {})
        self.log = log or []
        self.threads = threads


def prepend_pythonpath(path: str | os.PathLike) -> None:
    """Put ``path`` first on ``PYTHONPATH`` of this process and its children (idempotent).

    The workflow calls it with the repository's ``src/`` so that jobs running in conda
    environments (which hold third-party packages only) import this checkout's ``crbnn``.
    """
    entry = str(path)
    current = os.environ.get("PYTHONPATH", "")
    if entry not in current.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (entry, current) if p)
