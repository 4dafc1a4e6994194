"""Camera conventions as seen through the renderer: landmark positions, pose signs, row 0 on top."""

from __future__ import annotations

import math

import pytest
import torch

from focus.facemodel.model import FaceModel
from focus.render.camera import Camera, euler_to_matrix, pose_vertices
from focus.render.rasterizer import rasterize
from focus.render.renderer import FaceRenderer, RenderSettings

# model-frame points (mm): subject's left eye (+x), right eye (-x), nose tip (+z), chin (-y)
LEFT_EYE = (32.0, 35.0, 60.0)
RIGHT_EYE = (-32.0, 35.0, 60.0)
NOSE = (0.0, 0.0, 100.0)
CHIN = (0.0, -70.0, 55.0)


def tiny_face() -> FaceModel:
    """Four named points plus a frontal quad (z = 50) behind them; landmark 0..3 = the points."""
    pts = torch.tensor(
        [
            LEFT_EYE,
            RIGHT_EYE,
            NOSE,
            CHIN,
            [-60.0, -80.0, 50.0],
            [60.0, -80.0, 50.0],
            [-60.0, 60.0, 50.0],
            [60.0, 60.0, 50.0],
        ]
    )
    V = pts.shape[0]
    tri = torch.tensor([[4, 5, 6], [6, 5, 7]])  # counter-clockwise seen from +z
    lm = torch.tensor([0, 1, 2, 3] + [4] * 64)
    zeros = torch.zeros(1, V, 3)
    return FaceModel(
        mean_shape=pts,
        id_basis=zeros,
        exp_basis=zeros,
        mean_albedo=torch.full((V, 3), 0.5),
        albedo_basis=zeros,
        triangles=tri,
        landmarks68=lm,
        now_landmarks7=lm[:7],
    ).validate()


def _render(angles=(0.0, 0.0, 0.0), trans=(0.0, 0.0, 0.0), size: int = 224):
    r = FaceRenderer(tiny_face(), RenderSettings(image_size=size, backend="torch"))
    c = r.layout.zeros(1)
    x = r.layout.join(type(c)(c.id, c.exp, c.albedo, torch.tensor([angles]), torch.tensor([trans]), c.sh))
    return r, r(x)


def test_frontal_landmark_positions() -> None:
    r, out = _render()
    f, d = 1015.0, 1000.0
    for k, (x, y, z) in enumerate((LEFT_EYE, RIGHT_EYE, NOSE, CHIN)):
        expected = torch.tensor([112.0 + f * x / (d - z), 112.0 - f * y / (d - z)])
        torch.testing.assert_close(out.landmarks[0, k], expected)
    u_left, u_right = out.landmarks[0, 0, 0], out.landmarks[0, 1, 0]
    assert u_left > 112 > u_right  # subject's left eye appears on the image's right
    assert out.landmarks[0, 0, 1] < 112 < out.landmarks[0, 3, 1]  # eyes above the centre, chin below


def test_focal_scales_with_image_size() -> None:
    _, big = _render(size=224)
    _, small = _render(size=112)
    torch.testing.assert_close(small.landmarks, big.landmarks / 2)
    assert Camera.for_image_size(64).focal == pytest.approx(1015.0 * 64 / 224)
    fov = 2 * math.degrees(math.atan(112 / 1015.0))
    assert fov == pytest.approx(12.6, abs=0.05)


@pytest.mark.parametrize(
    "axis,sign_check",
    [
        (1, lambda nose, other: nose[0] > 112),  # +yaw: nose towards image right
        (0, lambda nose, other: nose[1] > 112),  # +pitch: nose down in the image
        (2, lambda nose, other: other[1] < 112 - 1.0),  # +roll: the left eye (image right) moves up: anticlockwise
    ],
)
def test_pose_signs(axis: int, sign_check) -> None:
    angles = [0.0, 0.0, 0.0]
    angles[axis] = 0.2
    _, out = _render(angles=tuple(angles))
    nose = out.landmarks[0, 2]
    # for roll: the left eye's height above the eye line's frontal height
    _, frontal = _render()
    other = out.landmarks[0, 0] - frontal.landmarks[0, 0] + torch.tensor([0.0, 112.0])
    assert sign_check(nose, other)


def test_translation_moves_face_in_world_axes() -> None:
    _, right = _render(trans=(10.0, 0.0, 0.0))
    _, up = _render(trans=(0.0, 10.0, 0.0))
    _, closer = _render(trans=(0.0, 0.0, 100.0))
    _, frontal = _render()
    assert float(right.landmarks[0, 2, 0]) > float(frontal.landmarks[0, 2, 0])
    assert float(up.landmarks[0, 2, 1]) < float(frontal.landmarks[0, 2, 1])
    spread = lambda o: float(o.landmarks[0, 0, 0] - o.landmarks[0, 1, 0])  # noqa: E731
    assert spread(closer) > spread(frontal)


def test_row_zero_is_the_top_of_the_image() -> None:
    """A quad above the face's centre (world +y) covers only the top rows of every output."""
    r, _ = _render()
    quad = torch.tensor([[[-40.0, 10.0, 0.0], [40.0, 10.0, 0.0], [-40.0, 60.0, 0.0], [40.0, 60.0, 0.0]]])
    tri = torch.tensor([[0, 1, 2], [2, 1, 3]])
    out = r.render_vertices(quad, torch.full_like(quad, 0.5), torch.zeros(1, 27), triangles=tri)
    rows = torch.nonzero(out.mask[0, 0].sum(1) > 0).squeeze(1)
    assert rows.numel() > 10 and int(rows.max()) < 112
    assert float(out.image[0, :, :112].sum()) > 0 and float(out.image[0, :, 112:].sum()) == 0


def test_projection_gradcheck() -> None:
    cam = Camera.for_image_size(64)
    g = torch.Generator().manual_seed(0)
    v = (torch.randn(2, 5, 3, dtype=torch.float64, generator=g) * 50).requires_grad_(True)
    ang = (0.2 * torch.randn(2, 3, dtype=torch.float64, generator=g)).requires_grad_(True)
    t = (5 * torch.randn(2, 3, dtype=torch.float64, generator=g)).requires_grad_(True)

    def screen(v, ang, t):
        return cam.to_screen(cam.world_to_camera(pose_vertices(v, ang, t)))

    assert torch.autograd.gradcheck(screen, (v, ang, t))
    R = euler_to_matrix(ang.detach())
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(2, 3, 3))


def test_rasterizer_uses_the_image_frame() -> None:
    """Pixel (row i, col j) has its centre at (j + 0.5, i + 0.5): a triangle covering only the
    centre (2.5, 1.5) marks row 1, column 2."""
    screen = torch.tensor([[[2.3, 1.3, 50.0], [2.3, 1.8, 50.0], [2.8, 1.3, 50.0]]])
    frags = rasterize(screen, torch.tensor([[0, 1, 2]]), (4, 5))
    assert torch.nonzero(frags.mask[0]).tolist() == [[1, 2]]
