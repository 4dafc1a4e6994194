"""``focus now-eval``: score predictions on the NoW benchmark (validation layout)."""

from __future__ import annotations

import argparse
from pathlib import Path

#: Kept here (not imported) so that building the CLI does not load numpy/scipy.
_CHALLENGES = ("multiview_neutral", "multiview_expressions", "multiview_occlusions", "selfie")
_UNITS = ("cm", "m", "mm")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "now-eval",
        help="score reconstructions with the NoW benchmark protocol",
        description=(
            "Score 3D face reconstructions against the NoW scans exactly like the official NoW "
            "scorer: scan crop, 7-landmark Procrustes, rigid refinement, point-to-surface error. "
            "Writes a JSON summary (median/mean/std in mm per challenge and over all), the "
            "per-image arrays (_per_image.npz) and a cumulative error plot "
            "(_cumulative_error.png) beside it."
        ),
    )
    p.add_argument(
        "--dataset",
        required=True,
        type=Path,
        help="NoW dataset folder (with imagepathsvalidation.txt, scans/, scans_lmks_onlypp/)",
    )
    p.add_argument(
        "--predictions",
        required=True,
        type=Path,
        help="folder of <subject>/<challenge>/<IMG>.obj|.ply + <IMG>.npy|.txt",
    )
    p.add_argument("--out", required=True, type=Path, help="output JSON file")
    p.add_argument("--challenge", choices=_CHALLENGES, default=None, help="score one challenge only (default: all)")
    p.add_argument(
        "--metrical",
        metavar="UNIT",
        choices=_UNITS,
        default=None,
        help="metrical protocol; the unit of the predictions (mm, cm or m)",
    )
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="score the images that have predictions and report the count of missing ones (default: fail)",
    )
    p.add_argument(
        "--image-list", type=Path, default=None, help="image list (default: DATASET/imagepathsvalidation.txt)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from focus.now.scorer import format_summary, score_predictions_folder

    doc = score_predictions_folder(
        args.dataset,
        args.predictions,
        args.out,
        image_list=args.image_list,
        challenge=args.challenge,
        metrical_unit=args.metrical,
        allow_missing=args.allow_missing,
        progress=not args.no_progress,
    )
    for note in doc["warnings"]:
        print(f"focus now-eval: warning: {note}", file=sys.stderr)
    print(format_summary(doc["results"]))
    files = doc["files"]
    print(f"wrote {args.out.parent / files['json']} (+ {files['per_image']}, {files['cumulative_error_plot']})")
    if doc["missing"]:
        print(f"{len(doc['missing'])} image(s) had no prediction (allowed by --allow-missing)")
    return 0
