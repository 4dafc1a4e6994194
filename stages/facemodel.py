"""DVC stage `facemodel`: the embedded default face model and its preview sheets.

Reads the `facemodel` group of params.yaml (EmbeddedModelSettings) and the `render` group
(camera and lighting of the previews); writes the model to ``--out`` and the preview sheets to
``--reports`` (dvc.yaml names both, beside the outputs it declares).
"""

import argparse
import sys
from dataclasses import replace

from focus.stage_cli import pin_process

pin_process()  # one BLAS thread, deterministic kernels: before numpy and torch load

from focus.config import group  # noqa: E402
from focus.facemodel.embedded import EmbeddedModelSettings, generate_face_model  # noqa: E402
from focus.facemodel.expressions import expression_names  # noqa: E402
from focus.facemodel.model import save_face_model  # noqa: E402
from focus.facemodel.preview import PreviewSettings, write_previews  # noqa: E402
from focus.render.renderer import RenderSettings  # noqa: E402
from focus.stage_cli import report_errors  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="stages/facemodel.py", description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml", help="parameter file (default: %(default)s)")
    p.add_argument("--out", required=True, help="the face model to write (.npz), e.g. models/facemodel.npz")
    p.add_argument("--reports", required=True, help="folder of the preview sheets, e.g. reports/facemodel")
    a = p.parse_args(argv)
    return report_errors("facemodel", lambda: _run(a))


def _run(a: argparse.Namespace) -> int:
    settings = group(EmbeddedModelSettings, "facemodel", a.params)
    render = group(RenderSettings, "render", a.params)
    model = generate_face_model(settings, verbose=True)
    save_face_model(model, a.out)
    preview = replace(PreviewSettings(), panel_size=max(128, 2 * render.image_size))
    names = expression_names()[: model.n_exp]
    for path in write_previews(model, a.reports, render, preview, expression_names=names):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
