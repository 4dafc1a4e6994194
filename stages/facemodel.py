"""DVC stage `facemodel`: the embedded default face model and its preview sheets.

Reads the `facemodel` group of params.yaml (EmbeddedModelSettings) and the `render` group
(camera and lighting of the previews), writes models/facemodel.npz and reports/facemodel/*.png.
"""

import sys
from dataclasses import replace

from focus.config import group
from focus.facemodel.embedded import EmbeddedModelSettings, generate_face_model
from focus.facemodel.expressions import expression_names
from focus.facemodel.model import save_face_model
from focus.facemodel.preview import PreviewSettings, write_previews
from focus.render.renderer import RenderSettings
from focus.stage_cli import report_errors

MODEL = "models/facemodel.npz"
REPORTS = "reports/facemodel"


def main() -> int:
    return report_errors("facemodel", _main)


def _main() -> int:
    settings = group(EmbeddedModelSettings, "facemodel")
    render = group(RenderSettings, "render")
    model = generate_face_model(settings, verbose=True)
    save_face_model(model, MODEL)
    preview = replace(PreviewSettings(), panel_size=max(128, 2 * render.image_size))
    names = expression_names()[: model.n_exp]
    for path in write_previews(model, REPORTS, render, preview, expression_names=names):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
