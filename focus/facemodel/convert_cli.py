"""``focus model convert SRC --out MODEL.npz``: any supported face model -> the project's own format.

The ``focus model`` command group (:mod:`focus.facemodel.cli`) adds this subcommand with::

    from focus.facemodel.convert_cli import register_convert
    register_convert(model_subparsers)   # model_subparsers = the group's add_subparsers() result
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from focus.facemodel.loaders._common import DEFAULT_N_ALBEDO, DEFAULT_N_EXP, DEFAULT_N_ID

if TYPE_CHECKING:
    from focus.facemodel.model import FaceModel

_FORMATS = ("focus", "bfm2009", "bfm_front", "bfm2017", "ict")  # = focus.facemodel.loaders.FORMATS


def register_convert(model_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``convert`` subcommand to the ``focus model`` group; it sets ``func``."""
    p = model_subparsers.add_parser(
        "convert",
        help="convert a face model (BFM 2009/2017, Deep3DFaceRecon front BFM, ICT-FaceKit) to the project's .npz",
        description="Read a face model in any supported format and write it in the project's own format "
        "(mm, model frame, std-scaled bases, 0-based CCW triangles, 68 + 7 landmarks, regions). "
        "Formats: bfm2009 (01_MorphableModel.mat + Deep3DFaceRecon's Exp_Pca.bin, std_exp.txt, "
        "BFM_exp_idx.mat [, BFM_front_idx.mat, facemodel_info.mat] beside it), bfm_front "
        "(BFM_model_front.mat), bfm2017 (model2017-1_bfm_nomouth.h5), ict (an ICT-FaceKit FaceXModel/ folder), "
        "focus (.npz, e.g. to truncate).",
    )
    p.add_argument("src", type=Path, help="model file or folder")
    p.add_argument("--out", type=Path, required=True, help="output .npz file (written atomically)")
    p.add_argument("--format", choices=_FORMATS, default=None, help="input format (default: detected from SRC)")
    p.add_argument("--n-id", type=int, default=DEFAULT_N_ID, help="identity components to keep (default %(default)s)")
    p.add_argument(
        "--n-exp", type=int, default=DEFAULT_N_EXP, help="expression components to keep (default %(default)s)"
    )
    p.add_argument(
        "--n-albedo", type=int, default=DEFAULT_N_ALBEDO, help="albedo components to keep (default %(default)s)"
    )
    p.add_argument(
        "--no-recenter",
        action="store_true",
        help="keep the source's origin (default: move the mean shape's centroid to the origin)",
    )
    p.add_argument(
        "--landmarks",
        type=Path,
        default=None,
        help="bfm2009/bfm2017: file of 68 0-based vertex ids in iBUG order (.txt, .npy or .json list), "
        "numbered as in the source model",
    )
    p.add_argument(
        "--now-landmarks",
        type=Path,
        default=None,
        help="bfm2009/bfm2017/bfm_front: file of the 7 NoW landmark vertex ids (0-based, NoW order)",
    )
    p.add_argument(
        "--landmark-source",
        type=Path,
        default=None,
        help="bfm2017: a model (any format) to transfer the 68 landmarks from",
    )
    p.add_argument(
        "--crop",
        choices=("expression", "front", "none"),
        default=None,
        help="bfm2009: vertices to keep (default: expression = the 53,215 the expression basis covers)",
    )
    p.add_argument(
        "--region",
        choices=("face", "narrow_face"),
        default=None,
        help="ict: vertices to keep (default: face = 0..9408)",
    )
    p.add_argument(
        "--orthogonalize-expressions",
        action="store_true",
        help="ict: PCA the blendshapes instead of keeping them as they are",
    )
    p.add_argument(
        "--albedo-source",
        type=Path,
        default=None,
        help="ict: a model (any format) whose albedo is transferred (default: the embedded model)",
    )
    p.set_defaults(func=run_convert)
    return p


def _options(args: argparse.Namespace) -> dict:
    from focus.facemodel.loaders import load_any

    opts: dict = {}
    if args.no_recenter:
        opts["recenter"] = False
    if args.landmarks is not None:
        opts["landmarks68"] = args.landmarks
    if args.now_landmarks is not None:
        opts["now_landmarks7"] = args.now_landmarks
    if args.landmark_source is not None:
        opts["landmark_source"] = load_any(args.landmark_source, n_id=0, n_exp=0, n_albedo=0)
    if args.crop is not None:
        opts["crop"] = args.crop
    if args.region is not None:
        opts["region"] = args.region
    if args.orthogonalize_expressions:
        opts["orthogonalize_expressions"] = True
    if args.albedo_source is not None:
        opts["albedo_source"] = load_any(args.albedo_source, n_id=0, n_exp=0, n_albedo=args.n_albedo)
    return opts


def clamp_warnings(model: FaceModel, **requested: int | None) -> list[str]:
    """One sentence per ``--n-*`` option that asked for more components than ``model`` kept.

    ``requested`` maps ``n_id``/``n_exp``/``n_albedo`` to the asked counts (``None``: all).
    """
    kept = {
        "n_id": (model.n_id, "identity"),
        "n_exp": (model.n_exp, "expression"),
        "n_albedo": (model.n_albedo, "albedo"),
    }
    out = []
    for key, n in requested.items():
        have, what = kept[key]
        if n is not None and n > have:
            out.append(f"--{key.replace('_', '-')} {n} is more than the model has; kept all {have} {what} components")
    return out


def run_convert(args: argparse.Namespace) -> int:
    """Load ``args.src``, write ``args.out``; print a one-paragraph summary. Returns 0."""
    from focus.facemodel.loaders import load_any
    from focus.facemodel.model import save_face_model

    model = load_any(
        args.src, format=args.format, n_id=args.n_id, n_exp=args.n_exp, n_albedo=args.n_albedo, **_options(args)
    )
    for warning in clamp_warnings(model, n_id=args.n_id, n_exp=args.n_exp, n_albedo=args.n_albedo):
        print(f"focus model convert: warning: {warning}", file=sys.stderr)
    save_face_model(model, args.out)
    regions = ", ".join(f"{k}: {int(v.sum())}" for k, v in model.regions.items())
    print(
        f"wrote {args.out}: {model.name}\n"
        f"  {model.num_vertices} vertices, {model.num_triangles} triangles, {model.n_id} identity / "
        f"{model.n_exp} expression / {model.n_albedo} albedo components; regions ({regions})"
    )
    return 0
