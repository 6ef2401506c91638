"""Command line: ``crbnn infer`` (also ``python -m crbnn infer``) applies a trained network to a
coefficient NIfTI image; ``crbnn check-config FILE...`` checks config files as the workflow does and
names a file Snakemake cannot read (missing, empty, binary, not YAML, not a mapping).

Example::

    crbnn infer --model results/train_network/crb/model.pt \\
        --coefficients resources/invivo/coefficients.nii.gz --mask resources/invivo/mask.nii.gz \\
        --out my_maps --basis resources/basis.h5 --sequence resources/sequence.h5

writes ``my_maps/m0s.nii.gz``, ``T1.nii.gz`` (s), ``T2f.nii.gz`` (s) (NaN outside the mask) and,
with ``--sequence`` and ``--basis``, ``sqrt_crb_<p>.nii.gz`` and ``residual.nii.gz`` on the voxels
selected by ``--stride``/``--box`` (see :mod:`crbnn.images.maps`), plus ``info.json``.  Those take
the nuisance parameters at the NLLS nominal values and clip the estimates into the NLLS bounds that
the workflow stored in the model file (``meta["nlls"]``, :func:`nlls_settings_of`).

Checks: the image must be 4-D [X, Y, Z, 2R] with the network's R, and ``--basis`` (and
``--sequence``) must have the hashes the network was trained with; ``--model`` must be a model file
of this project; otherwise exit status 2 and one line naming the file.  NaN/inf or all-zero voxels
are left out of the mask (a warning).

Further checks (exit status 2, one line naming the option or file): a complex-valued NIfTI (the
real and imaginary parts must be separate volumes), ``--box`` outside the image or a voxel selection
(``--box``, ``--stride``, mask) with no voxel, ``--device`` that torch cannot use
(:func:`crbnn.common.device.resolve_device`), a MATLAB ``--sequence`` without ``--tr`` (the file
stores no TR), a basis whose columns are not orthonormal (:func:`crbnn.data.basis.check_orthonormal`).

Output folder: ``--out`` must be empty or absent.  With ``--overwrite`` a folder written earlier by
``crbnn infer`` is accepted: the files its ``info.json`` lists (key ``files``) are replaced; a file
there that ``crbnn infer`` did not write stops it (exit 2) even with ``--overwrite``.  Every output
is written into a private temporary folder next to ``--out`` (``.<out>.crbnn-tmp-*``) that is moved
into place at the end (:func:`publish`), so a crash or a full disk never leaves a half-written or
mixed folder.  The run holds an exclusive claim on ``--out`` (the lock file ``.<out>.crbnn-lock``
next to it, with the process id; :func:`claim_output`): a second ``crbnn infer`` with the same
``--out`` started meanwhile stops with exit status 2; a lock left by a killed run (its process is
gone) is taken over.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("crbnn")

#: Nuisance values (SI) used for the CRB and residual of a network without an NLLS fit, for a model
#: file without ``meta["nlls"]["nominal"]`` (written before the workflow stored it); the parameters
#: the network's model holds known take their values from ``model.meta["known"]``.
DEFAULT_NOMINAL = {"m0s": 0.15, "T1": 1.2, "T2f": 0.07, "Rex": 13.6, "T2s": 1.25e-5, "omega0": 0.0, "B1": 1.0}
#: Physics limits the estimates are clipped into before simulating (SI), for a model file without
#: ``meta["nlls"]["bounds"]``.
DEFAULT_BOUNDS = {"m0s": (0.0, 0.35), "T1": (0.4, 2.5), "T2f": (0.02, 0.25), "Rex": (2.0, 30.0),
                  "T2s": (5e-6, 2.1e-5), "omega0": (-897.6, 897.6), "B1": (0.6, 1.3)}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crbnn", description="CRB-informed networks for quantitative MT MRI.")
    sub = p.add_subparsers(dest="command", required=True)
    inf = sub.add_parser("infer", help="apply a trained network to a coefficient NIfTI image")
    inf.add_argument("--model", required=True, help="model.pt written by train_network")
    inf.add_argument("--coefficients", required=True, help="float32 NIfTI [X, Y, Z, 2R]: real parts, then imaginary parts")
    inf.add_argument("--mask", default=None, help="NIfTI [X, Y, Z], non-zero = analyse (default: all non-zero voxels)")
    inf.add_argument("--out", required=True, help="output folder of the maps (empty or absent, see --overwrite)")
    inf.add_argument("--overwrite", action="store_true",
                     help="replace the outputs of an earlier crbnn infer in --out (the files its info.json lists)")
    inf.add_argument("--basis", default=None, help="basis (.h5 or .mat) of the coefficients: hash checked against the model")
    inf.add_argument("--sequence", default=None,
                     help="pulse train (.h5, plain text, or .mat with --tr) for sqrt(CRB) and residual maps: hash checked")
    inf.add_argument("--tr", type=float, default=None,
                     help="TR in s of a --sequence file that stores none (the public .mat: 0.0035); must agree with a TR the file states")
    inf.add_argument("--r2sl", default=None, help="R2sl table (.h5; default: the cached default table)")
    inf.add_argument("--sigma", type=float, default=None,
                     help="noise sigma per real/imaginary part in the data's units (default: estimated from the residuals)")
    inf.add_argument("--stride", type=int, default=1, help="sqrt(CRB)/residual on every stride-th row and column only")
    inf.add_argument("--box", type=int, nargs=4, default=None, metavar=("X0", "X1", "Y0", "Y1"),
                     help="sqrt(CRB)/residual only inside this voxel box (half-open)")
    inf.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    inf.add_argument("--device", default="cpu", help="torch device of the network (auto, cpu, cuda, cuda:N)")
    chk = sub.add_parser("check-config", help="check config files as the workflow does, naming the file or key at fault")
    chk.add_argument("configfiles", nargs="+", metavar="FILE",
                     help="config files in --configfile order (later ones override earlier ones key by key)")
    chk.add_argument("--directory", default=".", help="working directory of the workflow (relative paths start there)")
    return p


def check_config_files(args: argparse.Namespace) -> None:
    """``crbnn check-config``: read every file (naming a missing, empty, binary, non-YAML or non-mapping
    one), merge them like Snakemake's ``--configfile`` and run :func:`crbnn.config.checks.validate_config`."""
    from crbnn.config.checks import validate_config
    from crbnn.config.files import merge_config, read_config_file

    config: dict[str, Any] = {}
    default = Path(args.directory) / "config" / "config.yaml"  # the Snakefile's configfile, when present
    for f in ([default] if default.is_file() else []) + list(args.configfiles):
        config = merge_config(config, read_config_file(f))
    schema_dir = Path(__file__).resolve().parents[2] / "workflow" / "schemas"
    if not schema_dir.is_dir():
        raise ValueError(f"{schema_dir}: the workflow's schemas are not there (crbnn check-config runs from a checkout)")
    tr = validate_config(config, schema_dir, args.directory)
    print(f"config OK ({', '.join(args.configfiles)}; pulse-train TR {tr:g} s)")


class OutputFolderError(ValueError):
    """``--out`` holds files this run would not write, or another run holds it (the message names the folder)."""


def _lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.crbnn-lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def claim_output(out: Path) -> Iterator[Path]:
    """Hold an exclusive claim on the output folder ``out`` (a lock file next to it) while writing.

    Raises :class:`OutputFolderError` when another live ``crbnn infer`` holds it.  A lock whose
    process is gone (a killed run) is taken over; stale temporary folders of ``out`` are removed.
    """
    lock = _lock_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or "0")
            except (OSError, ValueError):
                pid = 0
            if pid > 0 and not _alive(pid):
                log.warning("%s: lock of a crbnn infer that is gone (pid %d); taking it over", lock, pid)
                lock.unlink(missing_ok=True)
                continue
            raise OutputFolderError(
                f"{out}: another crbnn infer (pid {pid or 'unknown'}) is writing to this --out (lock {lock}); "
                "wait for it or choose another folder (remove the lock only if no such run is active)"
            ) from None
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        break
    try:
        for stale in out.parent.glob(f".{out.name}.crbnn-tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        yield lock
    finally:
        lock.unlink(missing_ok=True)


def publish(tmp: Path, out: Path, replaced: Sequence[Path]) -> None:
    """Move the finished temporary folder ``tmp`` into place as ``out``.

    ``out`` absent or empty: one rename.  ``out`` holding an earlier run's outputs (``replaced``,
    every file of it, checked by :func:`earlier_outputs`): it is renamed aside, ``tmp`` renamed in,
    and the old folder removed.  A folder that changed meanwhile is never merged into.
    """
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if out.exists():
        present = sorted(out.iterdir())
        if sorted(replaced) != present:
            raise OutputFolderError(f"{out}: the folder changed while crbnn infer ran; the new maps are kept in {tmp}")
        aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.crbnn-old-", dir=out.parent))
        os.rename(out, aside / out.name)
        os.rename(tmp, out)
        shutil.rmtree(aside, ignore_errors=True)
        for old in replaced:
            log.info("replaced %s (output of an earlier crbnn infer; --overwrite)", old)
    else:
        os.rename(tmp, out)


def _write_outputs(tmp: Path, out: Path, maps: Mapping[str, Any], affine: Any, info: Mapping[str, Any]) -> None:
    """Every map and info.json into ``tmp``; an OSError (a full disk) names the file of ``out`` it failed on."""
    from crbnn.common.io import write_json
    from crbnn.images.maps import write_maps

    for name, m in maps.items():
        try:
            write_maps(tmp, {name: m}, affine)
        except OSError as e:
            raise OSError(f"{out / (name + '.nii.gz')}: cannot write ({e.strerror or e}, in the temporary folder "
                          f"{tmp.name}); nothing was written to --out") from None
    try:
        write_json(tmp / "info.json", dict(info))
    except OSError as e:
        raise OSError(f"{out / 'info.json'}: cannot write ({e.strerror or e}, in the temporary folder {tmp.name}); "
                      "nothing was written to --out") from None


def earlier_outputs(out: Path, overwrite: bool) -> list[Path]:
    """Files of an earlier ``crbnn infer`` in ``out`` that this run replaces (checked before any work).

    Raises :class:`OutputFolderError` when ``out`` is a file, holds anything without ``overwrite``,
    or holds files that its ``info.json`` manifest does not list.
    """
    if not out.exists():
        return []
    if not out.is_dir():
        raise OutputFolderError(f"{out}: --out exists and is not a folder")
    present = sorted(q.name for q in out.iterdir())
    if not present:
        return []
    shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
    if not overwrite:
        raise OutputFolderError(
            f"{out}: output folder already holds {len(present)} file(s) ({shown}); choose an empty folder, "
            "or pass --overwrite to replace the outputs of an earlier crbnn infer there"
        )
    listed: list[str] = []
    info = out / "info.json"
    if info.is_file():
        try:
            listed = [str(f) for f in json.loads(info.read_text()).get("files", [])]
        except (ValueError, AttributeError):
            listed = []
    own = set(listed) | ({"info.json"} if listed else set())
    foreign = [name for name in present if name not in own or "/" in name]
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise OutputFolderError(
            f"{out}: holds {len(foreign)} file(s) that crbnn infer did not write ({shown}; not listed in its "
            "info.json); not removing them, even with --overwrite; choose another folder"
        )
    return [out / name for name in present]


def nlls_settings_of(
    meta: Mapping[str, Any], source: str = "model file"
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """Nominal values and bounds (SI) of the sqrt(CRB) and residual step for a model's ``meta``.

    From ``meta["nlls"]`` (``nominal``, ``bounds``: what the workflow's NLLS used,
    crbnn.config.settings.nlls_model_meta), with the known parameters at ``meta["known"]``.  A model
    file written before these were stored falls back to :data:`DEFAULT_NOMINAL` /
    :data:`DEFAULT_BOUNDS` with a warning naming ``source``.

    >>> nominal, bounds = nlls_settings_of({"nlls": {"nominal": {"T1": 1.0, "Rex": 14.0}, "bounds": {"T1": [0.5, 2.0]}},
    ...                                     "known": {"Rex": 13.6}})
    >>> nominal, bounds
    ({'T1': 1.0, 'Rex': 13.6}, {'T1': (0.5, 2.0)})
    """
    stored = meta.get("nlls") or {}
    missing = [k for k in ("nominal", "bounds") if not stored.get(k)]
    if missing:
        log.warning("%s: its meta has no NLLS %s (a model file written before they were stored); using the "
                    "defaults of crbnn infer (crbnn.cli.DEFAULT_NOMINAL, DEFAULT_BOUNDS)",
                    source, " and ".join(missing))
    nominal = {p: float(v) for p, v in (stored.get("nominal") or DEFAULT_NOMINAL).items()}
    nominal.update({p: float(v) for p, v in meta.get("known", {}).items()})
    bounds = {p: (float(lo), float(hi)) for p, (lo, hi) in (stored.get("bounds") or DEFAULT_BOUNDS).items()}
    return nominal, bounds


def infer(args: argparse.Namespace) -> dict:
    """Run ``crbnn infer``; returns the info dict written to ``<out>/info.json``."""
    import torch

    from crbnn.images.maps import (
        CoefficientImage,
        ImageError,
        check_model_image,
        network_maps,
        read_coefficient_image,
        select_voxels,
        uncertainty_maps,
        write_maps,
    )
    from crbnn.learn.model_file import load_model

    out = Path(args.out)
    earlier_outputs(out, getattr(args, "overwrite", False))  # before any work; again under the claim
    if args.threads:
        torch.set_num_threads(args.threads)
    device = _device(args.device)
    model = load_model(args.model, device=device)
    rank = int(model.meta.get("rank", model.widths[0] // 2))
    basis = seq = None
    if args.basis:
        from crbnn.data.basis import load_basis

        basis = load_basis(args.basis, rank=None)
        if basis.rank < rank:
            raise ImageError(f"{args.basis}: basis has {basis.rank} columns but the network needs R = {rank}")
        if basis.rank > rank:
            basis = load_basis(args.basis, rank=rank)
    _refuse_complex_nifti(args.coefficients)
    image: CoefficientImage = read_coefficient_image(args.coefficients, args.mask, rank=rank)
    check_model_image(model, image, basis.sha256 if basis is not None else None, str(args.basis))
    if args.sequence:
        from crbnn.data.sequence import SequenceError, load_sequence

        if Path(args.sequence).suffix.lower() == ".mat" and args.tr is None:
            raise ImageError(f"{args.sequence}: a MATLAB pulse train stores no TR; give it with --tr <seconds> "
                             "(0.0035 for the public control file)")
        try:
            seq = load_sequence(args.sequence, tr=args.tr)
        except SequenceError as e:
            raise ImageError(str(e).replace("set sequence.tr (in s)", "pass --tr (in s)")
                             .replace("the config gives sequence.tr", "--tr gives")
                             .replace("remove sequence.tr (null: use the file's TR)", "leave out --tr")) from None
        if model.meta.get("sequence_sha256") not in (None, seq.sha256):
            raise ImageError(f"{args.sequence}: pulse train sha256 {seq.sha256} differs from the network's "
                             f"{model.meta.get('sequence_sha256')}")
    _check_box(args.box, image.shape)
    if image.n_invalid:
        log.warning("%s: %d voxel(s) with NaN/inf coefficients left out of the mask", args.coefficients, image.n_invalid)
    if not image.mask.any():
        raise ImageError(f"{args.coefficients}: no voxel to analyse (mask {args.mask or '(none)'} empty, or every "
                         "coefficient zero/NaN); nothing written")
    evaluated = None
    if seq is not None and basis is not None:
        evaluated = select_voxels(image.mask, args.stride, args.box)
        if not evaluated.any():
            raise ImageError(f"--box {args.box} / --stride {args.stride}: selects no voxel of the mask "
                             f"({int(image.mask.sum())} voxels, image {image.shape[0]} x {image.shape[1]}); "
                             "widen --box or lower --stride")
    maps, seconds = network_maps(model, image)
    info = {"model": str(args.model), "coefficients": str(args.coefficients), "mask": args.mask,
            "n_mask": int(image.mask.sum()), "n_invalid": image.n_invalid, "inference_seconds": seconds,
            "loss": model.meta.get("loss"), "units": {p: u for p, u in zip(model.meta["estimated"], model.meta.get("units", []))}}
    if evaluated is not None and seq is not None and basis is not None:
        from crbnn.config.regime import all_nuisance
        from crbnn.physics.r2sl import R2slTable, default_table

        r2sl = R2slTable.load(args.r2sl) if args.r2sl else default_table()
        nuisance = tuple(model.meta.get("nuisance") or all_nuisance(model.meta["estimated"]))  # older files: all unknown
        nominal, bounds = nlls_settings_of(model.meta, str(args.model))
        t0 = time.perf_counter()
        extra, sigma, source = uncertainty_maps(image, maps, evaluated, seq, basis.u, nominal, bounds,
                                                args.sigma, r2sl=r2sl, nuisance=nuisance,
                                                estimated=model.meta["estimated"])
        maps.update(extra)
        info.update({"sigma": sigma, "sigma_source": source, "n_evaluated": int(evaluated.sum()),
                     "uncertainty_seconds": time.perf_counter() - t0, "nuisance_unknown": list(nuisance),
                     "known": dict(model.meta.get("known", {})),
                     "nuisance": {p: nominal[p] for p in ("Rex", "T2s", "omega0", "B1")}})
    info["files"] = sorted(f"{name}.nii.gz" for name in maps)
    with claim_output(out):
        replaced = earlier_outputs(out, getattr(args, "overwrite", False))  # nobody else writes now
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.crbnn-tmp-", dir=out.parent))
        try:
            _write_outputs(tmp, out, maps, image.affine, info)
            publish(tmp, out, replaced)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    log.info("%s: %d voxels in %.3f s -> %s", args.coefficients, info["n_mask"], seconds, args.out)
    return info


def _device(name: str) -> Any:
    """``--device`` through :func:`crbnn.common.device.resolve_device`; its errors name the option."""
    from crbnn.common.device import resolve_device

    try:
        return resolve_device(name)
    except (ValueError, RuntimeError) as e:
        raise ValueError(str(e).replace("compute.device", "--device")) from None


def _refuse_complex_nifti(path: str) -> None:
    """A complex-valued NIfTI is refused (the layout is real parts, then imaginary parts, as volumes)."""
    import numpy as np

    if not Path(path).is_file():
        return  # read_coefficient_image names the missing file
    try:
        import nibabel as nib

        dtype = np.dtype(nib.load(str(path)).get_data_dtype())
    except Exception:  # not a NIfTI: read_coefficient_image says so
        return
    if dtype.kind == "c":
        from crbnn.images.maps import ImageError

        raise ImageError(f"{path}: complex-valued NIfTI ({dtype.name}); store the coefficients as float32 "
                         "[X, Y, Z, 2R]: volumes 0..R-1 the real parts, R..2R-1 the imaginary parts")


def _check_box(box: Sequence[int] | None, shape: Sequence[int]) -> None:
    """``--box`` [X0, X1, Y0, Y1] must lie inside the image (X1 <= X, Y1 <= Y)."""
    if box is None:
        return
    x0, x1, y0, y1 = box
    if x1 > shape[0] or y1 > shape[1]:
        raise ValueError(f"--box {list(box)} lies outside the image ({shape[0]} x {shape[1]} voxels); "
                         f"need X1 <= {shape[0]} and Y1 <= {shape[1]}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``crbnn`` command; returns the exit status (2 for bad inputs)."""
    from crbnn.common.logs import setup_logging
    from crbnn.images.maps import ImageError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "infer":
        _check_infer_args(parser, args)
    setup_logging(None)
    try:
        if args.command == "infer":
            infer(args)
        elif args.command == "check-config":
            check_config_files(args)
    except (ImageError, ValueError, OSError) as e:
        text = " ".join(str(e).split()) or type(e).__name__  # one line
        print(f"crbnn {args.command}: error: {text}", file=sys.stderr)
        return 2
    return 0


def _check_infer_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Argument values argparse cannot check by type (exit status 2 with a message naming the option)."""
    if args.stride < 1:
        parser.error(f"--stride must be >= 1, got {args.stride}")
    if args.sigma is not None and not args.sigma > 0:
        parser.error(f"--sigma must be > 0, got {args.sigma}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.box is not None and not (0 <= args.box[0] < args.box[1] and 0 <= args.box[2] < args.box[3]):
        parser.error(f"--box needs 0 <= X0 < X1 and 0 <= Y0 < Y1, got {args.box}")
    if args.tr is not None and not (math.isfinite(args.tr) and 0 < args.tr < 1):
        parser.error(f"--tr is the pulse train's TR in s (0 < TR < 1), got {args.tr}")
    if args.tr is not None and not args.sequence:
        parser.error("--tr is the TR of the --sequence file; give --sequence too")
    if args.sigma is not None and not math.isfinite(args.sigma):
        parser.error(f"--sigma must be finite, got {args.sigma}")
    for opt in ("sequence", "r2sl"):
        if getattr(args, opt) and not args.basis:
            parser.error(f"--{opt} is used for the sqrt(CRB) and residual maps, which need --basis too")


if __name__ == "__main__":
    sys.exit(main())
