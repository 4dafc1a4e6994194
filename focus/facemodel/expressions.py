"""Expression basis of the embedded model: designed blendshapes, then orthogonalised.

Each blendshape is a displacement field ``(V, 3)`` (mm) of one facial action at full strength
(weight 1), built from smooth weights on the canonical frontal coordinates ``(X, Y)`` of the
template (see :mod:`focus.facemodel.face_shape`) and, for the jaw, a rotation of the mean shape
about a hinge behind the cheek. Bilateral actions come as a **symmetric** field (both sides) and
an **antisymmetric** one (left side minus right side, ``+x`` is the subject's left): weights
``(a, b)`` on the pair act as ``a + b`` on the left and ``a - b`` on the right half of the face.

**Orthogonalisation.** The fields overlap (smile and squint both raise the cheek), so the basis
is made orthogonal. ``jaw_open`` (the first mode, the only one that opens the mouth slit) is
kept exactly as designed; every other field is made to keep the slit closed, orthogonal to
``jaw_open`` (see :func:`expression_basis`), and then the rest are orthogonalised with Löwdin's
symmetric method, ``B' = (B B^T)^(-1/2) B`` over the flattened unit
fields, which changes every field as little as possible in the least-squares sense and treats
all of them alike (unlike Gram-Schmidt, which favours the first ones and can leave the last ones
unrecognisable). Each orthogonalised field is then rescaled to the norm of its blendshape, so a
coefficient of 1 is still about one full expression: coefficients stay blendshape-like in scale
(of order 1), not standardised scores. :func:`expression_basis` reports how close each mode stays
to its blendshape (cosine; all above 0.65 for the designed set). Symmetric and antisymmetric
fields are already orthogonal on the mirror-symmetric mesh.

The mouth slit opens because the jaw moves the lower-lip copies of the slit vertices and not the
upper-lip copies.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from focus.facemodel.face_shape import ANATOMY, eye_curves, gauss, gauss2, sigmoid, smoothstep, window
from focus.facemodel.template_mesh import TemplateMesh


class _Ctx:
    """Shared inputs of the blendshape functions."""

    def __init__(self, template: TemplateMesh, canonical_xy: np.ndarray, mean_shape: np.ndarray) -> None:
        self.X = canonical_xy[:, 0]
        self.Y = canonical_xy[:, 1]
        self.A = np.abs(self.X)
        self.sgn = np.sign(self.X)
        self.P = mean_shape
        self.lip_side = template.lip_side.astype(np.float64)
        self.ym = ANATOMY["mouth"][1]
        self.mw = ANATOMY["mouth_corner"][0]
        self.V = canonical_xy.shape[0]

    def vec(self, w: np.ndarray, dx, dy, dz) -> np.ndarray:
        return w[:, None] * np.stack(
            np.broadcast_arrays(np.asarray(dx, float), np.asarray(dy, float), np.asarray(dz, float)), -1
        )

    # lip membership: upper lip (and slit upper copies) vs lower lip
    def upper_part(self) -> np.ndarray:
        u = sigmoid((self.Y - self.ym) / 0.3)
        return np.where(self.lip_side > 0, 1.0, np.where(self.lip_side < 0, 0.0, u))

    def lower_part(self) -> np.ndarray:
        return 1.0 - self.upper_part()

    def jaw_weight(self) -> np.ndarray:
        """How much each vertex follows the mandible: 1 on the chin and jaw, 0 above the mouth.

        ``d`` is the height below a line through the mouth that rises from the mouth corners
        towards the ears; the transition is sharp inside the mouth (the slit separates the lips)
        and widens across the cheeks. Near the mouth corners the lower lip follows the jaw less
        (an oval opening): its weight at the slit is ``sqrt(1 - (X / corner)^2)``, reaching 1 a
        centimetre or so further down.
        """
        mw = self.mw
        yc = self.ym + 24.0 * smoothstep((self.A - mw) / 40.0)
        s = 0.15 + 10.0 * smoothstep((self.A - (mw - 3.0)) / 15.0)
        d = yc - self.Y
        opening = np.sqrt(np.clip(1.0 - (self.X / mw) ** 2, 0.0, 1.0))
        depth = s * np.logaddexp(0.0, d / s)  # smooth max(d, 0)
        w = sigmoid(d / s) * (1.0 - (1.0 - opening) * np.exp(-depth / 8.0))
        return np.where(self.lip_side > 0, 0.0, np.where(self.lip_side < 0, opening, w))


# --------------------------------------------------------------------------- blendshapes
def _jaw_open(c: _Ctx) -> np.ndarray:
    ang = np.radians(12.0)
    pivot = np.array([0.0, 5.0, 0.0])
    r = c.P - pivot
    ca, sa = np.cos(ang), np.sin(ang)
    rot = np.stack([r[:, 0], r[:, 1] * ca - r[:, 2] * sa, r[:, 1] * sa + r[:, 2] * ca], -1)
    d = rot - r + np.array([0.0, -2.0, 8.0])
    return c.jaw_weight()[:, None] * d


def _smile(c: _Ctx) -> np.ndarray:
    corner = gauss2(c.A, c.Y, 25.0, -45.0, 9.0, 9.0)
    d = c.vec(corner, 4.5 * c.sgn, 6.0, -3.0)
    d += c.vec(gauss2(c.A, c.Y, 36.0, -15.0, 12.0, 12.0), 0.5 * c.sgn, 4.0, 2.5)
    d += c.vec(gauss2(c.X, c.Y, 0.0, -45.0, 22.0, 8.0), 2.5 * c.X / 25.0, 0.8, -0.5)
    d += c.vec(gauss2(c.A, c.Y, 31.0, 20.0, 10.0, 4.0), 0.0, 1.2, 0.5)
    return d


def _frown(c: _Ctx) -> np.ndarray:
    corner = gauss2(c.A, c.Y, 25.0, -46.0, 9.0, 9.0)
    d = c.vec(corner, 0.5 * c.sgn, -5.5, -1.0)
    d += c.vec(gauss2(c.A, c.Y, 22.0, -62.0, 10.0, 10.0), 0.0, -1.5, 0.5)
    return d


def _brow_raise(c: _Ctx) -> np.ndarray:
    w = gauss(c.A - 28.0, 24.0) * smoothstep((c.Y - 24.0) / 10.0) * (1.0 - smoothstep((c.Y - 50.0) / 45.0))
    return c.vec(w, 0.0, 8.0, 0.5)


def _brow_inner_raise(c: _Ctx) -> np.ndarray:
    w = gauss(c.A - 15.0, 11.0) * smoothstep((c.Y - 26.0) / 10.0) * (1.0 - smoothstep((c.Y - 45.0) / 35.0))
    return c.vec(w, 0.0, 6.0, 0.3)


def _brow_lower(c: _Ctx) -> np.ndarray:
    w = gauss2(c.A, c.Y, 20.0, 39.0, 14.0, 8.0)
    d = c.vec(w, -2.5 * c.sgn, -4.5, 0.3)
    d += c.vec(gauss2(c.X, c.Y, 0.0, 36.0, 6.0, 6.0), 0.0, 0.0, 1.2)
    return d


def _eyelid_fields(c: _Ctx):
    u, _, upper, lower, _ = eye_curves(c.A, c.Y)
    across = window(u, -1.0, 1.0, 0.08)
    return u, upper, lower, across


def _blink(c: _Ctx) -> np.ndarray:
    u, upper, lower, across = _eyelid_fields(c)
    gap = np.clip(upper - lower, 0.0, None)
    in_fiss = (c.Y >= lower) & (c.Y <= upper)
    dy_in = -0.9 * (c.Y - lower)  # the opening is compressed onto the lower margin (to 10 %)
    fade = 1.0 - smoothstep((c.Y - upper) / 9.0)
    dy_up = -0.9 * gap * fade  # the lid above slides down, fading out towards the brow
    dy = np.where(in_fiss, dy_in, np.where(c.Y > upper, dy_up, 0.0)) * across
    dz = 1.0 * gauss(c.A - ANATOMY["eye_centre"][0], 9.0) * window(c.Y, lower - 1.0, upper + 6.0, 1.5)
    lower_lid = gauss(c.Y - (lower - 2.0), 2.0) * across
    return np.stack([np.zeros_like(dy), dy + 0.8 * lower_lid, dz], -1)


def _eye_wide(c: _Ctx) -> np.ndarray:
    u, upper, lower, across = _eyelid_fields(c)
    w = window(c.Y, 0.5 * (upper + lower), upper + 10.0, 2.0) * across
    return c.vec(w, 0.0, 3.0, 0.3)


def _squint(c: _Ctx) -> np.ndarray:
    u, upper, lower, across = _eyelid_fields(c)
    w = window(c.Y, lower - 8.0, 0.5 * (upper + lower), 2.0) * across
    d = c.vec(w, 0.0, 3.0, 0.5)
    d += c.vec(gauss2(c.A, c.Y, 38.0, 8.0, 12.0, 9.0), 0.0, 2.0, 1.5)
    return d


def _cheek_puff(c: _Ctx) -> np.ndarray:
    w = gauss2(c.A, c.Y, 40.0, -32.0, 13.0, 13.0)
    return c.vec(w, 6.0 * c.sgn, 0.0, 5.0)


def _mouth_stretch(c: _Ctx) -> np.ndarray:
    corner = gauss2(c.A, c.Y, 25.0, -45.0, 10.0, 9.0)
    return c.vec(corner, 5.5 * c.sgn, -1.5, -1.5)


def _dimple(c: _Ctx) -> np.ndarray:
    corner = gauss2(c.A, c.Y, 26.0, -45.0, 7.0, 7.0)
    return c.vec(corner, -1.5 * c.sgn, 0.0, -4.0)


def _nose_wrinkle(c: _Ctx) -> np.ndarray:
    w = gauss2(c.A, c.Y, 12.0, -5.0, 8.0, 14.0)
    d = c.vec(w, 0.0, 3.5, 0.8)
    d += c.vec(gauss2(c.A, c.Y, 18.0, -30.0, 10.0, 8.0) * c.upper_part(), 0.0, 2.5, 0.0)
    return d


def _pucker(c: _Ctx) -> np.ndarray:
    w = gauss2(c.X, c.Y, 0.0, -45.0, 16.0, 10.0)
    return c.vec(w, -0.4 * c.X, 0.0, 8.0)


def _lips_press(c: _Ctx) -> np.ndarray:
    # the red lips thin out towards the line where they meet and are pressed inwards
    w = gauss(c.X, 18.0) * window(c.Y, c.ym - 14.0, c.ym + 11.0, 1.5)
    return c.vec(w, 0.0, -0.3 * (c.Y - c.ym), -2.5)


def _upper_lip_raise(c: _Ctx) -> np.ndarray:
    w = gauss2(c.X, c.Y, 0.0, -40.0, 18.0, 7.0) * c.upper_part()
    d = c.vec(w, 0.0, 5.0, 0.5)
    d += c.vec(gauss2(c.A, c.Y, 15.0, -17.0, 6.0, 5.0), 0.0, 1.5, 0.0)
    return d


def _lower_lip_depress(c: _Ctx) -> np.ndarray:
    w = gauss2(c.X, c.Y, 0.0, -49.0, 18.0, 7.0) * c.lower_part()
    return c.vec(w, 0.0, -5.0, 1.0)


def _chin_raise(c: _Ctx) -> np.ndarray:
    w = gauss2(c.X, c.Y, 0.0, -68.0, 16.0, 12.0) * c.lower_part()
    return c.vec(w, 0.0, 3.0, 1.5)


def _nostril_flare(c: _Ctx) -> np.ndarray:
    w = gauss2(c.A, c.Y, 15.0, -17.0, 5.0, 5.0)
    return c.vec(w, 2.0 * c.sgn, 0.0, 0.5)


def _mouth_shift(c: _Ctx) -> np.ndarray:
    w = gauss2(c.X, c.Y, 0.0, -46.0, 22.0, 12.0)
    return c.vec(w, 6.0, 0.0, 0.0)


def _jaw_shift(c: _Ctx) -> np.ndarray:
    return c.vec(c.jaw_weight(), 7.0, 0.0, 0.0)


def _jaw_forward(c: _Ctx) -> np.ndarray:
    return c.vec(c.jaw_weight(), 0.0, 0.0, 6.0)


_Field = Callable[[_Ctx], np.ndarray]

#: ``(name, field, kind)`` in order of importance; kind ``"sym"`` adds one symmetric mode,
#: ``"pair"`` a symmetric and an antisymmetric (``name_asym``) mode, ``"odd"`` one mode as is.
_ACTIONS: tuple[tuple[str, _Field, str], ...] = (
    ("jaw_open", _jaw_open, "sym"),
    ("smile", _smile, "pair"),
    ("blink", _blink, "pair"),
    ("brow_raise", _brow_raise, "pair"),
    ("brow_lower", _brow_lower, "pair"),
    ("frown", _frown, "pair"),
    ("pucker", _pucker, "sym"),
    ("lips_press", _lips_press, "sym"),
    ("cheek_puff", _cheek_puff, "pair"),
    ("upper_lip_raise", _upper_lip_raise, "sym"),
    ("lower_lip_depress", _lower_lip_depress, "sym"),
    ("mouth_shift", _mouth_shift, "odd"),
    ("jaw_shift", _jaw_shift, "odd"),
    ("jaw_forward", _jaw_forward, "sym"),
    ("eye_wide", _eye_wide, "pair"),
    ("squint", _squint, "pair"),
    ("mouth_stretch", _mouth_stretch, "pair"),
    ("dimple", _dimple, "pair"),
    ("brow_inner_raise", _brow_inner_raise, "pair"),
    ("chin_raise", _chin_raise, "sym"),
    ("nose_wrinkle", _nose_wrinkle, "pair"),
    ("nostril_flare", _nostril_flare, "sym"),
)


def expression_names() -> list[str]:
    """Names of all available expression modes, in basis order."""
    names: list[str] = []
    for name, _, kind in _ACTIONS:
        names.append(name)
        if kind == "pair":
            names.append(f"{name}_asym")
    return names


def blendshapes(
    template: TemplateMesh, canonical_xy: np.ndarray, mean_shape: np.ndarray
) -> tuple[list[str], np.ndarray]:
    """All designed blendshapes before orthogonalisation: names and ``(K, V, 3)`` fields (mm)."""
    c = _Ctx(template, canonical_xy, mean_shape)
    left = sigmoid(c.X / 3.0)  # soft side weight (0.5 on the midline)
    side = 2.0 * left - 1.0  # +1 left, -1 right
    names: list[str] = []
    fields: list[np.ndarray] = []
    for name, fn, kind in _ACTIONS:
        d = fn(c)
        names.append(name)
        fields.append(d)
        if kind == "pair":
            names.append(f"{name}_asym")
            fields.append(d * side[:, None])
    return names, np.stack(fields, 0)


def lowdin_orthogonalise(fields: np.ndarray, n_fixed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric (Löwdin) orthogonalisation keeping each field's norm.

    Args:
        fields: ``(K, V, 3)`` linearly independent displacement fields.
        n_fixed: the first ``n_fixed`` fields are orthogonalised among themselves only (one
            field: kept exactly); the others are first made orthogonal to them, then
            Löwdin-orthogonalised among themselves.

    Returns:
        ``(orth, cosine)``: ``(K, V, 3)`` mutually orthogonal fields, each with the norm of its
        input, and ``(K,)`` the cosine between each output and its input.
    """
    K = fields.shape[0]
    B = fields.reshape(K, -1).astype(np.float64)
    norms = np.linalg.norm(B, axis=1)
    if np.any(norms <= 0):
        raise ValueError("a blendshape is all zeros")
    n_fixed = min(max(n_fixed, 0), K)
    head = _lowdin_rows(B[:n_fixed] / norms[:n_fixed, None]) if n_fixed else np.zeros((0, B.shape[1]))
    tail = B[n_fixed:] - (B[n_fixed:] @ head.T) @ head
    tail_n = np.linalg.norm(tail, axis=1)
    if np.any(tail_n <= 1e-8 * norms[n_fixed:]):
        raise ValueError("blendshapes are linearly dependent; cannot orthogonalise")
    O = np.concatenate([head, _lowdin_rows(tail / tail_n[:, None])], axis=0) if K > n_fixed else head
    cos = np.sum(O * (B / norms[:, None]), axis=1)
    out = O * norms[:, None]
    return out.reshape(fields.shape), cos


def _lowdin_rows(Bn: np.ndarray) -> np.ndarray:
    """Orthonormal rows closest (least squares, jointly) to the unit rows ``Bn``: ``S^-1/2 Bn``."""
    S = Bn @ Bn.T
    evals, evecs = np.linalg.eigh(S)
    if evals.min() <= 1e-8:
        raise ValueError("blendshapes are linearly dependent; cannot orthogonalise")
    return ((evecs / np.sqrt(evals)) @ evecs.T) @ Bn


def close_slit(fields: np.ndarray, twin: np.ndarray) -> np.ndarray:
    """Fields ``(K, V, 3)`` with both copies of every mouth-slit vertex moved by their average.

    This is the orthogonal projection onto the fields that keep the mouth closed.
    """
    return 0.5 * (fields + fields[:, twin])


def expression_basis(
    template: TemplateMesh, canonical_xy: np.ndarray, mean_shape: np.ndarray, n_exp: int
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The first ``n_exp`` blendshapes, orthogonalised: ``(names, basis (n_exp, V, 3), cosine (n_exp,))``.

    ``jaw_open`` (mode 0) is the only mode that opens the mouth slit and is kept exactly. All
    other fields are projected onto the fields that keep the slit closed (both copies of a slit
    vertex move alike), made orthogonal to ``jaw_open`` through its closed-slit part (which keeps
    them closed-slit and makes them orthogonal to the whole ``jaw_open``), and then
    Löwdin-orthogonalised among themselves; every mode keeps the norm of its blendshape.
    So no mode but ``jaw_open`` opens or crosses the lips, whatever the sign of its weight.
    ``cosine`` compares each mode with its designed blendshape.
    """
    names, fields = blendshapes(template, canonical_xy, mean_shape)
    if not 1 <= n_exp <= len(names):
        raise ValueError(f"n_exp must be in [1, {len(names)}] (the designed expressions), got {n_exp}")
    fields = fields[:n_exp]
    jaw = fields[0].reshape(-1)
    rest = close_slit(fields[1:], template.twin).reshape(n_exp - 1, -1)
    jaw_closed = close_slit(fields[:1], template.twin).reshape(-1)
    rest = rest - np.outer(rest @ jaw_closed / (jaw_closed @ jaw_closed), jaw_closed)
    out = np.empty_like(fields.reshape(n_exp, -1))
    out[0] = jaw
    if n_exp > 1:
        orth, _ = lowdin_orthogonalise(rest.reshape(n_exp - 1, *fields.shape[1:]))
        target = np.linalg.norm(fields[1:].reshape(n_exp - 1, -1), axis=1)
        orth = orth.reshape(n_exp - 1, -1)
        out[1:] = orth / np.linalg.norm(orth, axis=1, keepdims=True) * target[:, None]
    flat = fields.reshape(n_exp, -1)
    cos = np.sum(out * flat, axis=1) / (np.linalg.norm(out, axis=1) * np.linalg.norm(flat, axis=1))
    return names[:n_exp], out.reshape(fields.shape), cos
