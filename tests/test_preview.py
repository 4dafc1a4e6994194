"""Preview sheets of a face model and the `focus model preview` command."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from focus.facemodel.embedded import EmbeddedModelSettings, generate_face_model
from focus.facemodel.model import save_face_model
from focus.facemodel.preview import PREVIEW_FILES, PreviewSettings, directional_sh, write_previews
from focus.render.shading import sh_irradiance

TINY = EmbeddedModelSettings(resolution=31, population_size=30, albedo_population_size=30, n_id=6, n_albedo=5, n_exp=6)


@pytest.fixture(scope="module")
def tiny():
    return generate_face_model(TINY)


def test_directional_light_brightens_surfaces_facing_it():
    d = torch.tensor([0.6, 0.3, 1.0])
    d = d / d.norm()
    normals = torch.stack([d, -d, torch.tensor([0.0, 0.0, 1.0])])[None]
    sh = directional_sh(tuple(d.tolist()), strength=0.4, ambient_offset=0.0)[None]
    e = sh_irradiance(normals, sh)[0]
    flat = sh_irradiance(normals, torch.zeros(1, 27))[0]
    # first-order SH: irradiance = ambient + strength * k1 * (n . d), the same for R, G and B
    k1 = (2 * math.pi / math.sqrt(3)) * (math.sqrt(3) / math.sqrt(4 * math.pi))
    np.testing.assert_allclose((e - flat)[0].numpy(), 0.4 * k1, rtol=1e-5)
    np.testing.assert_allclose((e - flat)[1].numpy(), -0.4 * k1, rtol=1e-5)
    assert torch.allclose(e[:, 0], e[:, 2])


def test_write_previews_makes_png_sheets_of_a_face(tiny, tmp_path):
    from PIL import Image

    paths = write_previews(tiny, tmp_path, settings=PreviewSettings(panel_size=48, n_modes=2, n_samples=2))
    assert [p.name for p in paths] == list(PREVIEW_FILES)
    total = 0
    for p in paths:
        assert p.exists() and p.stat().st_size > 1000, p
        total += p.stat().st_size
        with Image.open(p) as im:
            assert im.format == "PNG"
            rgb = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
        # a lit face on black: a good share of the sheet is neither black nor white
        face = (rgb.mean(-1) > 0.15) & (rgb.mean(-1) < 0.95)
        assert face.mean() > 0.05, p
    assert total < 600_000
    with Image.open(tmp_path / "mean_face.png") as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float64)
    lit = rgb[rgb.mean(-1) > 40]
    assert lit[:, 0].mean() > lit[:, 2].mean()  # skin colour: more red than blue


@pytest.mark.slow
def test_cli_preview(tiny, tmp_path, capsys):
    from focus.cli import main

    model = tmp_path / "tiny.npz"
    save_face_model(tiny, model)
    out = tmp_path / "sheets"
    assert main(["model", "preview", str(model), "--out", str(out), "--size", "40", "--modes", "1"]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == sorted(PREVIEW_FILES)
    assert "wrote" in capsys.readouterr().out


def test_cli_preview_missing_model_is_a_clear_error(tmp_path, capsys):
    from focus.cli import main

    rc = main(["model", "preview", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "o")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "nope.npz" in err and "not found" in err
