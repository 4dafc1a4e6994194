"""``focus model``: the face-model command group.

* ``focus model generate --out MODEL.npz``: generate the embedded default model from a seed
  (settings from ``params.yaml``'s ``facemodel`` group, overridable by options) and optionally
  its preview sheets.
* ``focus model preview MODEL.npz --out DIR``: render preview sheets of any model in the
  project's format (mean face in poses and lights, modes, expressions, landmarks, regions).
* ``focus model convert ...``: other formats -> the project's format
  (:mod:`focus.facemodel.convert_cli`, when present).

Heavy imports (torch, the generator, the renderer) happen inside the commands, so building the
``focus`` parser stays fast.
"""

from __future__ import annotations

import argparse
from dataclasses import fields, replace
from pathlib import Path

try:
    from focus.facemodel.convert_cli import register_convert
except ModuleNotFoundError as _exc:  # not written yet in this checkout
    if not (_exc.name or "").startswith("focus"):
        raise
    register_convert = None

#: ``focus model generate`` options that override ``EmbeddedModelSettings`` fields.
_GENERATE_OVERRIDES = ("seed", "resolution", "population_size", "albedo_population_size", "n_id", "n_exp", "n_albedo")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``focus model`` with its subcommands ``generate``, ``preview`` (and ``convert``)."""
    p = subparsers.add_parser(
        "model",
        help="face models: generate the embedded default, preview or convert a model",
        description="Face-model tools. Run `focus model COMMAND --help` for each command's options.",
    )
    sub = p.add_subparsers(dest="model_command", metavar="COMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    g = sub.add_parser(
        "generate",
        help="generate the embedded default face model from a seed",
        description="Generate the embedded default face model (identity and albedo PCA of a sampled "
        "population, designed expressions, 68 + 7 landmarks, regions) and write it in the project's "
        "format. Settings come from the `facemodel` group of the parameter file (defaults if the file "
        "is absent); the options below override them.",
    )
    g.add_argument("--out", type=Path, required=True, help="output model file (.npz, written atomically)")
    g.add_argument(
        "--params",
        type=Path,
        default=Path("params.yaml"),
        help="parameter file whose `facemodel` group is used if it exists (default: %(default)s)",
    )
    g.add_argument("--seed", type=int, default=None, help="random seed of the populations")
    g.add_argument("--resolution", type=int, default=None, help="mesh grid columns (71: ~4.9k vertices; 125: ~15k)")
    g.add_argument("--population-size", type=int, default=None, help="sampled faces for the identity PCA")
    g.add_argument("--albedo-population-size", type=int, default=None, help="sampled albedo maps for the albedo PCA")
    g.add_argument("--n-id", type=int, default=None, help="identity components to keep")
    g.add_argument("--n-exp", type=int, default=None, help="expression modes to keep")
    g.add_argument("--n-albedo", type=int, default=None, help="albedo components to keep")
    g.add_argument("--preview", type=Path, default=None, metavar="DIR", help="also write the preview sheets into DIR")
    g.set_defaults(func=run_generate)

    v = sub.add_parser(
        "preview",
        help="render preview sheets (PNG) of a face model",
        description="Render PNG sheets of a model in the project's format: the mean face in several "
        "poses and lights, identity and albedo modes at +-3 std, every expression mode, the numbered "
        "68 landmarks, the vertex regions and random faces.",
    )
    v.add_argument(
        "model",
        type=Path,
        help="model file in the project's format (.npz); convert others (.mat, .h5, ICT) with `focus model convert`",
    )
    v.add_argument("--out", type=Path, required=True, help="output folder")
    v.add_argument("--size", type=int, default=128, help="pixels per rendered face (default: %(default)s)")
    v.add_argument("--modes", type=int, default=6, help="identity / albedo modes to show (default: %(default)s)")
    v.add_argument("--sigma", type=float, default=3.0, help="std shown for each mode (default: %(default)s)")
    v.set_defaults(func=run_preview)

    if register_convert is not None:
        register_convert(sub)


def _settings_from(args: argparse.Namespace):
    from focus.config import from_dict, load_params
    from focus.errors import FocusError, InputFileError
    from focus.facemodel.embedded import EmbeddedModelSettings

    base: dict = {}
    if args.params is not None and Path(args.params).exists():
        base = dict(load_params(args.params).get("facemodel") or {})
    names = {f.name for f in fields(EmbeddedModelSettings)}
    for key in _GENERATE_OVERRIDES:
        value = getattr(args, key, None)
        if value is not None and key in names:
            base[key] = value
    try:
        return from_dict(EmbeddedModelSettings, base, f"{args.params}:facemodel")
    except FocusError:
        raise
    except ValueError as exc:  # out-of-range values rejected by the settings
        raise InputFileError(
            args.params, f"invalid `facemodel` settings: {exc}", "fix the group or the options"
        ) from exc


def run_generate(args: argparse.Namespace) -> int:
    from focus.facemodel.embedded import generate_face_model
    from focus.facemodel.model import save_face_model

    settings = _settings_from(args)
    model = generate_face_model(settings, verbose=True)
    save_face_model(model, args.out)
    print(f"wrote {args.out}")
    if args.preview is not None:
        from focus.facemodel.preview import write_previews

        for path in write_previews(model, args.preview):
            print(f"wrote {path}")
    return 0


def run_preview(args: argparse.Namespace) -> int:
    from focus.errors import InputFileError
    from focus.facemodel.model import load_face_model
    from focus.facemodel.preview import PreviewSettings, write_previews

    if args.size < 32:
        raise InputFileError(args.out, f"--size {args.size} is too small to see a face", "use at least 32 pixels")
    model = load_face_model(args.model)
    settings = replace(PreviewSettings(), panel_size=args.size, n_modes=max(1, args.modes), sigma=args.sigma)
    for path in write_previews(model, args.out, settings=settings):
        print(f"wrote {path}")
    return 0
