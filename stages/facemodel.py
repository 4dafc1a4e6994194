"""DVC stage `facemodel`: the embedded default face model and its preview sheets.

Reads the `facemodel` group of params.yaml (EmbeddedModelSettings) and the `render` group
(camera and lighting of the previews), writes models/facemodel.npz and reports/facemodel/*.png.
"""

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

MODEL = "models/facemodel.npz"
REPORTS = "reports/facemodel"


def main() -> int:
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
