"""``focus reconstruct`` and ``focus prepare``: FOCUS on your own photos."""

from __future__ import annotations

import argparse
import logging
import sys

from focus.apps.photos import DEFAULT_MAX_MEGAPIXELS

RECONSTRUCT_HELP = """\
Reconstruct every face in the given photos (files or folders): per face a 3D mesh (posed and
neutral, OBJ with vertex colours plus the colourless NoW variant with its 7 landmarks), the
outlier mask (in the aligned crop and pasted back into the photo), an overlay of the render on
the photo and the coefficients as JSON; summary.html shows all faces at a glance.

Faces are found with MTCNN (facenet-pytorch) unless --landmarks gives a CSV
`name,x1,y1,...,x68,y68` (68 iBUG points, pixels of the image as stored; name = the image's file
name, its path relative to its input folder, or a longer part of its path such as DIR1/a.jpg;
the longest match wins, and a row that fits two photos is used for neither). Unreadable,
truncated, oversized or faceless images are reported and skipped. Exit status: 0 when every image
was processed, 1 otherwise.

Results go to OUT/<image name without extension>/face_<k>/. Photos are told apart by their full
path: when two inputs share a name (DIR1/a.jpg, DIR2/a.jpg), each result folder is named after the
part of the path that differs (OUT/DIR1/a/, OUT/DIR2/a/). Running again into the same --out adds
to it: earlier results stay on disk and stay listed in report.json and summary.html (marked as
earlier); a photo processed again replaces its own earlier result (newest wins), and a different
photo with the same name gets a new folder (a/ stays, the new one is a_2/). Failures and ignored
files are those of the latest run.

example:  focus reconstruct my_photos/ --out results/   then open results/summary.html
"""

PREPARE_HELP = """\
Turn a folder of photos (CelebA-HQ or your own) into a training folder: loosely aligned crops
in images/, the 68 landmarks in landmarks.csv (MediaPipe face mesh mapped to iBUG-68), the
photos that were not used in rejected.csv with the reason, and prepare_report.json. Train on it
with `train.data: <OUT>` in params.yaml. Photos with the same name in different folders
(DIR1/a.jpg, DIR2/a.jpg) give one crop each, named after the part of the path that differs
(images/DIR1/a.png, images/DIR2/a.png). Exit status: 0 when at least one photo was usable.

example:  focus prepare ~/celeba_hq --out data/celeba_hq
"""


def register(subparsers) -> None:
    r = subparsers.add_parser(
        "reconstruct",
        help="3D faces, outlier masks and overlays from your photos",
        description=RECONSTRUCT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER", help="photos and/or folders of photos")
    r.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="output folder (created; earlier results in it are kept and listed, see above)",
    )
    r.add_argument(
        "--model",
        default=None,
        metavar="CHECKPOINT",
        help="trained model (default: models/focus.pt, the pipeline's output)",
    )
    r.add_argument(
        "--misfit-prior",
        default="auto",
        metavar="NPZ",
        help="misfit prior subtracted from the neutral shape: auto (misfit_prior.npz beside the model "
        "when present), none, or a file",
    )
    r.add_argument(
        "--facemodel",
        default=None,
        metavar="NPZ",
        help="face model file (default: the one the checkpoint was trained with)",
    )
    r.add_argument(
        "--landmarks", default=None, metavar="CSV", help="take 68 landmarks from this CSV instead of detecting faces"
    )
    r.add_argument(
        "--detector",
        default="mtcnn",
        choices=("mtcnn", "mediapipe"),
        help="face detector: mtcnn (5 points, default) or mediapipe (68 points)",
    )
    r.add_argument("--device", default="auto", help="auto (GPU when there is one), cpu, cuda, cuda:1, ...")
    r.add_argument("--batch-size", type=int, default=16, help="faces per network call (default 16)")
    r.add_argument("--max-faces", type=int, default=8, help="most faces per image, largest first (default 8)")
    r.add_argument("--min-score", type=float, default=0.9, help="detector confidence threshold (default 0.9)")
    r.add_argument(
        "--max-megapixels",
        type=float,
        default=DEFAULT_MAX_MEGAPIXELS,
        help=f"reject larger images (default {DEFAULT_MAX_MEGAPIXELS:g})",
    )
    r.add_argument("--view-size", type=int, default=256, help="render size for overlays, px (default 256)")
    r.add_argument("--recursive", action="store_true", help="also read sub-folders of input folders")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    a = r.add_argument_group(
        "test-time adaptation",
        "Adapt the networks to the photos before reconstructing them: the FOCUS EM, unsupervised, on "
        "each batch of faces (copies of the networks; the model file is not changed). Helps where the "
        "photos differ from the training images (the CPU default has seen synthetic faces only); "
        "costs about 10 s per face on a laptop CPU with the defaults.",
    )
    a.add_argument("--adapt", type=int, default=0, metavar="ROUNDS", help="EM rounds per batch (default 0: off; try 3)")
    a.add_argument(
        "--adapt-steps",
        type=int,
        nargs=2,
        default=None,
        metavar=("SEG", "REC"),
        help="U-Net and encoder steps per round (default 60 60)",
    )
    a.add_argument(
        "--adapt-lr",
        type=float,
        nargs=2,
        default=None,
        metavar=("ENCODER", "UNET"),
        help="learning rates (default 2e-4 1e-3)",
    )
    a.add_argument(
        "--adapt-params",
        nargs="+",
        default=None,
        metavar="YAML",
        help="take the loss weights and optimisers from the `em` group of these params files (later "
        "files override earlier ones), e.g. params.yaml configs/paper.yaml for a paper-scale model",
    )
    a.add_argument(
        "--adapt-identity",
        default="auto",
        metavar="NET",
        help="face-recognition network of the identity and perceptual terms: auto (idnet.pt beside the "
        "model, if any), none, an idnet.pt file, or arcface:BACKBONE.pth",
    )
    r.set_defaults(func=run_reconstruct)

    p = subparsers.add_parser(
        "prepare",
        help="turn a folder of photos into a training folder",
        description=PREPARE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("photos", nargs="+", metavar="PHOTOS_DIR", help="folder(s) or files of photos")
    p.add_argument("--out", required=True, metavar="DIR", help="the training folder to write")
    p.add_argument(
        "--size", type=int, default=256, help="side of the stored crops, px (default 256; 384 for paper scale)"
    )
    p.add_argument("--zoom-out", type=float, default=1.25, help="context around the FFHQ-style framing (default 1.25)")
    p.add_argument("--format", dest="image_format", default="png", choices=("png", "jpg"), help="crop file format")
    p.add_argument("--min-eye-distance", type=float, default=20.0, help="reject smaller faces (eye distance, px)")
    p.add_argument("--max-megapixels", type=float, default=DEFAULT_MAX_MEGAPIXELS, help="reject larger photos")
    p.add_argument("--device", default="auto", help="device of the MTCNN box detector (auto, cpu, cuda)")
    p.add_argument("--recursive", action="store_true", help="also read sub-folders (kept under images/)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_prepare)


def _logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(levelname)s %(message)s")


def adapt_settings(args: argparse.Namespace):
    """:class:`focus.apps.adapt.AdaptSettings` from the ``--adapt*`` options."""
    from dataclasses import replace

    from focus.apps.adapt import AdaptSettings, default_adapt_em
    from focus.config import from_dict
    from focus.errors import FocusError
    from focus.train.settings import EMSettings

    em = default_adapt_em()
    if args.adapt_params:
        from focus.config import merged_params

        em = from_dict(EMSettings, merged_params(args.adapt_params).get("em"), str(args.adapt_params[-1]), key="em")
    if args.adapt_lr:
        em = replace(
            em,
            encoder_optim=replace(em.encoder_optim, lr=args.adapt_lr[0]),
            unet_optim=replace(em.unet_optim, lr=args.adapt_lr[1]),
        )
    seg, rec = args.adapt_steps or (AdaptSettings.seg_steps, AdaptSettings.rec_steps)
    try:
        return AdaptSettings(rounds=args.adapt, seg_steps=seg, rec_steps=rec, em=em)
    except ValueError as exc:
        raise FocusError(f"--adapt / --adapt-steps: {exc}") from exc


def run_reconstruct(args: argparse.Namespace) -> int:
    from focus.apps.detect import CsvLandmarks, make_detector
    from focus.apps.reconstruct import (
        Reconstructor,
        ReconstructSettings,
        load_adapt_perceptual,
        load_focus_model,
        resolve_device,
    )

    _logging(args.quiet)
    settings = ReconstructSettings(
        batch_size=args.batch_size,
        max_faces=args.max_faces,
        max_megapixels=args.max_megapixels,
        view_size=args.view_size,
        recursive=args.recursive,
        progress=not args.quiet,
        adapt=adapt_settings(args),
    )
    model = load_focus_model(args.model, args.facemodel, args.device, args.misfit_prior)
    perceptual = load_adapt_perceptual(args.adapt_identity, model.checkpoint) if settings.adapt.enabled else None
    if args.landmarks:
        detector = CsvLandmarks(args.landmarks)
    elif args.detector == "mtcnn":
        detector = make_detector("mtcnn", device=str(resolve_device(args.device)), min_score=args.min_score)
    else:
        detector = make_detector("mediapipe", device=str(resolve_device(args.device)))
    try:
        report = Reconstructor(model, detector, settings, perceptual).run(args.inputs, args.out)
    finally:
        detector.close()
    failed = report.failed
    print(
        f"{len(report.ok)} images ({report.n_faces} faces) reconstructed, {len(failed)} failed, "
        f"{sum(o.status == 'ignored' for o in report.outcomes)} ignored"
        f"{f', {len(report.earlier)} earlier results kept' if report.earlier else ''}: "
        f"{report.out_dir / 'summary.html'}"
    )
    for o in failed:
        print(f"  failed: {o.path}: {o.reason}", file=sys.stderr)
    return report.exit_code


def run_prepare(args: argparse.Namespace) -> int:
    from focus.apps.detect import make_detector
    from focus.apps.prepare import PrepareSettings, prepare
    from focus.apps.reconstruct import resolve_device

    _logging(args.quiet)
    settings = PrepareSettings(
        size=args.size,
        zoom_out=args.zoom_out,
        image_format=args.image_format,
        min_eye_distance=args.min_eye_distance,
        max_megapixels=args.max_megapixels,
        recursive=args.recursive,
        progress=not args.quiet,
    )
    detector = make_detector("mediapipe", device=str(resolve_device(args.device)))
    try:
        report = prepare(args.photos, args.out, detector, settings)
    finally:
        detector.close()
    print(
        f"{len(report.prepared)} photos prepared, {len(report.rejected)} rejected "
        f"(see {report.out_dir / 'rejected.csv'}), {len(report.ignored)} ignored: {report.out_dir}"
    )
    return report.exit_code


__all__ = ["register", "run_prepare", "run_reconstruct"]
