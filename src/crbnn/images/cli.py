"""Command line: ``crbnn infer`` (also ``python -m crbnn infer``) applies a trained network to a
coefficient NIfTI image.

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

Output folder: ``--out`` must be empty or absent.  With ``--overwrite`` a folder written earlier by
``crbnn infer`` is accepted: the files its ``info.json`` lists (key ``files``) are removed once every
input check has passed, before the new maps are written; a file there that ``crbnn infer`` did not
write stops it (exit 2) even with ``--overwrite``.  So the folder never mixes maps of two runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
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
    inf.add_argument("--sequence", default=None, help="pulse train (.h5) for sqrt(CRB) and residual maps: hash checked")
    inf.add_argument("--r2sl", default=None, help="R2sl table (.h5; default: the cached default table)")
    inf.add_argument("--sigma", type=float, default=None,
                     help="noise sigma per real/imaginary part in the data's units (default: estimated from the residuals)")
    inf.add_argument("--stride", type=int, default=1, help="sqrt(CRB)/residual on every stride-th row and column only")
    inf.add_argument("--box", type=int, nargs=4, default=None, metavar=("X0", "X1", "Y0", "Y1"),
                     help="sqrt(CRB)/residual only inside this voxel box (half-open)")
    inf.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    inf.add_argument("--device", default="cpu", help="torch device of the network (cpu, cuda)")
    return p


class OutputFolderError(ValueError):
    """``--out`` holds files this run would not write (the message names the folder and files)."""


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
                    "defaults of crbnn infer (crbnn.images.cli.DEFAULT_NOMINAL, DEFAULT_BOUNDS)",
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
    replaced = earlier_outputs(out, getattr(args, "overwrite", False))
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, device=args.device)
    rank = int(model.meta.get("rank", model.widths[0] // 2))
    basis = seq = None
    if args.basis:
        from crbnn.data.basis import load_basis

        basis = load_basis(args.basis, rank=None)
        if basis.rank < rank:
            raise ImageError(f"{args.basis}: basis has {basis.rank} columns but the network needs R = {rank}")
        if basis.rank > rank:
            basis = load_basis(args.basis, rank=rank)
    image: CoefficientImage = read_coefficient_image(args.coefficients, args.mask, rank=rank)
    check_model_image(model, image, basis.sha256 if basis is not None else None, str(args.basis))
    if args.sequence:
        from crbnn.data.sequence import load_sequence

        seq = load_sequence(args.sequence)
        if model.meta.get("sequence_sha256") not in (None, seq.sha256):
            raise ImageError(f"{args.sequence}: pulse train sha256 {seq.sha256} differs from the network's "
                             f"{model.meta.get('sequence_sha256')}")
    if image.n_invalid:
        log.warning("%s: %d voxel(s) with NaN/inf coefficients left out of the mask", args.coefficients, image.n_invalid)
    if not image.mask.any():
        log.warning("%s: no voxel to analyse (mask empty, or all coefficients zero/NaN)", args.coefficients)
    maps, seconds = network_maps(model, image)
    info = {"model": str(args.model), "coefficients": str(args.coefficients), "mask": args.mask,
            "n_mask": int(image.mask.sum()), "n_invalid": image.n_invalid, "inference_seconds": seconds,
            "loss": model.meta.get("loss"), "units": {p: u for p, u in zip(model.meta["estimated"], model.meta.get("units", []))}}
    if seq is not None and basis is not None:
        from crbnn.config.regime import ALL_NUISANCE
        from crbnn.physics.r2sl import R2slTable, default_table

        r2sl = R2slTable.load(args.r2sl) if args.r2sl else default_table()
        evaluated = select_voxels(image.mask, args.stride, args.box)
        nuisance = tuple(model.meta.get("nuisance") or ALL_NUISANCE)  # older files: all nine unknown
        nominal, bounds = nlls_settings_of(model.meta, str(args.model))
        t0 = time.perf_counter()
        extra, sigma, source = uncertainty_maps(image, maps, evaluated, seq, basis.u, nominal, bounds,
                                                args.sigma, r2sl=r2sl, nuisance=nuisance)
        maps.update(extra)
        info.update({"sigma": sigma, "sigma_source": source, "n_evaluated": int(evaluated.sum()),
                     "uncertainty_seconds": time.perf_counter() - t0, "nuisance_unknown": list(nuisance),
                     "known": dict(model.meta.get("known", {})),
                     "nuisance": {p: nominal[p] for p in ("Rex", "T2s", "omega0", "B1")}})
    info["files"] = sorted(f"{name}.nii.gz" for name in maps)
    for old in replaced:  # every check has passed: remove the earlier run's outputs, then write
        old.unlink()
        log.info("removed %s (output of an earlier crbnn infer; --overwrite)", old)
    write_maps(out, maps, image.affine, info)
    log.info("%s: %d voxels in %.3f s -> %s", args.coefficients, info["n_mask"], seconds, args.out)
    return info


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
    for opt in ("sequence", "r2sl"):
        if getattr(args, opt) and not args.basis:
            parser.error(f"--{opt} is used for the sqrt(CRB) and residual maps, which need --basis too")



if __name__ == "__main__":
    sys.exit(main())
