"""Synthetic identities for training and testing the offline identity network.

An **identity** is one draw of the face model's identity (shape) and albedo coefficients: the
two things the reconstruction's identity loss must be sensitive to. Each identity is rendered in
several **views**, each with its own nuisances, drawn and composed by the synthetic-data code
(:mod:`focus.synth`, with the distributions of ``params.yaml``'s ``synth`` group), so the views
look like the pipeline's synthetic images:

* expression, pose (yaw up to about +-45 degrees), translation and SH light
  (:func:`focus.synth.sampling.sample_face`);
* painted appearance details the model cannot represent (brows, eyes, lips, beard, make-up,
  skin texture, sheen; :mod:`focus.synth.appearance`) with probability ``appearance_prob``,
  else the bare model albedo (as in a render of the reconstruction);
* a background (:mod:`focus.synth.backgrounds`) with the head around the face (hair, ears, neck;
  :mod:`focus.synth.context`) with probability ``background_prob``, else black (as behind a
  bare render);
* occasionally an occluder (glasses, hair, hand, ...; :mod:`focus.synth.occluders`);
* camera effects (blur, noise, gamma, white balance) and detector-like landmark noise
  (:func:`focus.synth.compose.composite`).

Every view is cropped exactly as the pipeline crops its inputs: the 5-point ArcFace alignment of
:func:`focus.nets.face_align.align_faces` from the (noisy) landmarks, at the identity network's
input size. Everything is drawn from a :class:`numpy.random.Generator`, so a set is a pure
function of the seed. Crops are kept in memory as ``uint8`` (3,000 crops at 56 px are 28 MB).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from focus.coeffs import CoeffLayout
from focus.config import param, probability
from focus.nets.face_align import align_faces
from focus.parallel import close_pool, spawn_pool
from focus.render.renderer import FaceRenderer, RenderSettings
from focus.synth.appearance import sample_appearance
from focus.synth.backgrounds import photo_pool, sample_background
from focus.synth.compose import composite, render_faces
from focus.synth.occluders import sample_kinds
from focus.synth.sampling import FaceDraw, sample_face, signed_expressions
from focus.synth.settings import SynthSettings


@dataclass(frozen=True)
class IdentityDataSettings:
    """How many synthetic identities and views, and what the views contain (``idnet.data``).

    The distributions (coefficients, pose, light, appearance, backgrounds, occluders, head
    context, camera effects, landmark noise) are the synthetic data's (``params.yaml``: ``synth``).

    Attributes:
        train_identities: identities the network is trained on (= classes of the margin head).
        train_views: views rendered per training identity.
        test_identities: held-out identities (never trained on) for the verification report.
        test_views: views per held-out identity.
        appearance_prob: probability of painted appearance details (else the bare model albedo,
            as in a render of the reconstruction). Drawn per view: details are nuisances here.
        background_prob: probability of a background with the head context (hair, ears, neck)
            behind the face (else black, as behind a bare render).
        occlusion_prob: probability of occluders (light occlusion: the network should cope with
            some, the reconstruction's masks hide the rest).
        target_components: leading identity and albedo coefficients (each) kept as regression
            targets of the auxiliary loss (:class:`focus.idnet.training.IdNetTrainSettings`).
        supersample: drawing resolution factor of the composition (1: draw at the output size).
        batch_size: views composed per chunk (fixed chunks: the output does not depend on
            ``workers``).
        workers: worker processes composing views (0: in this process).
    """

    train_identities: int = param(1200, ge=2)
    train_views: int = param(4, ge=1)
    test_identities: int = param(100, ge=2)
    test_views: int = param(6, ge=2)
    appearance_prob: float = probability(0.6)
    background_prob: float = probability(0.8)
    occlusion_prob: float = probability(0.1)
    target_components: int = param(10, ge=0)
    supersample: int = param(1, ge=1)
    batch_size: int = param(32, ge=1)
    workers: int = param(0, ge=0)


@dataclass(frozen=True)
class Identities:
    """``n`` identities: ``id`` ``(n, K_id)`` and ``albedo`` ``(n, K_alb)`` coefficients (float64)."""

    id: np.ndarray
    albedo: np.ndarray

    def __len__(self) -> int:
        return len(self.id)

    def take(self, idx) -> Identities:
        idx = np.asarray(idx).reshape(-1)
        return Identities(self.id[idx], self.albedo[idx])


@dataclass(frozen=True)
class Nuisances:
    """Everything about ``n`` views that is *not* identity.

    Attributes:
        exp: ``(n, K_exp)`` expression coefficients.
        angles: ``(n, 3)`` pitch, yaw, roll (radians).
        trans: ``(n, 3)`` translation (mm).
        sh: ``(n, 27)`` SH light coefficients (added to the renderer's ambient term).
        light_dir: ``(n, 3)`` unit direction towards the dominant light (world frame).
        appearance: per view an :class:`focus.synth.appearance.AppearanceParams` or ``None``.
        background_seed: ``(n,)`` seed of the background, ``-1`` for black.
        occluders: per view a tuple of occluder kinds (empty: none).
        seed: ``(n,)`` seed of the rest of the composition (head context, occluders, camera
            effects, landmark noise).
    """

    exp: np.ndarray
    angles: np.ndarray
    trans: np.ndarray
    sh: np.ndarray
    light_dir: np.ndarray
    appearance: tuple
    background_seed: np.ndarray
    occluders: tuple
    seed: np.ndarray

    def __len__(self) -> int:
        return len(self.exp)

    def take(self, idx) -> Nuisances:
        idx = np.asarray(idx).reshape(-1)
        return Nuisances(
            self.exp[idx],
            self.angles[idx],
            self.trans[idx],
            self.sh[idx],
            self.light_dir[idx],
            tuple(self.appearance[i] for i in idx),
            self.background_seed[idx],
            tuple(self.occluders[i] for i in idx),
            self.seed[idx],
        )


#: Groups of nuisance fields that :func:`swap_factor` exchanges between views.
FACTORS: dict[str, tuple[str, ...]] = {
    "pose": ("angles", "trans"),
    "expression": ("exp",),
    "light": ("sh", "light_dir"),
    "details": ("appearance", "background_seed", "occluders", "seed"),
}


def swap_factor(base: Nuisances, other: Nuisances, factor: str) -> Nuisances:
    """``base`` with the fields of one factor (a key of :data:`FACTORS`) taken from ``other``."""
    if factor not in FACTORS:
        raise ValueError(f"unknown factor {factor!r}; known: {sorted(FACTORS)}")
    return replace(base, **{f: getattr(other, f) for f in FACTORS[factor]})


def sample_identities(rng: np.random.Generator, layout: CoeffLayout, n: int, synth: SynthSettings) -> Identities:
    """``n`` identities with coefficients ~ N(0, scale^2) (scales of ``synth.sampling``)."""
    return Identities(
        id=rng.standard_normal((n, layout.n_id)) * synth.sampling.id_scale,
        albedo=rng.standard_normal((n, layout.n_albedo)) * synth.sampling.albedo_scale,
    )


def sample_nuisances(
    rng: np.random.Generator,
    layout: CoeffLayout,
    n: int,
    s: IdentityDataSettings,
    synth: SynthSettings,
    ambient: float,
    signed_exp: np.ndarray | None = None,
) -> Nuisances:
    """``n`` independent views' nuisances (see :class:`IdentityDataSettings`).

    ``signed_exp``: expression components that may take negative weights
    (:func:`focus.synth.sampling.signed_expressions` of the model).
    """
    draws = [
        sample_face(rng, layout.n_id, layout.n_exp, layout.n_albedo, synth.sampling, ambient, signed_exp=signed_exp)
        for _ in range(n)
    ]
    appearance = tuple(
        sample_appearance(rng, synth.appearance) if rng.random() < s.appearance_prob else None for _ in range(n)
    )
    background = np.where(rng.random(n) < s.background_prob, rng.integers(0, 2**31 - 1, n), -1).astype(np.int64)
    occluders = tuple(
        tuple(sample_kinds(rng, synth.occluders)) if rng.random() < s.occlusion_prob else () for _ in range(n)
    )
    stack = lambda name: np.stack([getattr(d, name) for d in draws]).reshape(n, -1)  # noqa: E731
    return Nuisances(
        stack("exp"),
        stack("angles"),
        stack("trans"),
        stack("sh"),
        stack("light_dir"),
        appearance,
        background,
        occluders,
        rng.integers(0, 2**31 - 1, n).astype(np.int64),
    )


@torch.no_grad()
def render_views(
    renderer: FaceRenderer, identities: Identities, nuisances: Nuisances, s: IdentityDataSettings, synth: SynthSettings
) -> tuple[Tensor, Tensor]:
    """Compose one chunk of views: ``(B, 3, H, W)`` images in [0, 1] and ``(B, 68, 2)`` noisy landmarks (px).

    ``renderer`` draws at ``s.supersample`` times the output size ``H = W``.
    """
    if len(identities) != len(nuisances):
        raise ValueError(f"{len(identities)} identities for {len(nuisances)} views")
    k = int(s.supersample)
    draw_size = renderer.settings.image_size
    if draw_size % k:
        raise ValueError(f"renderer size {draw_size} is not a multiple of supersample {k}")
    draws = [
        FaceDraw(
            identities.id[i],
            nuisances.exp[i],
            identities.albedo[i],
            nuisances.angles[i],
            nuisances.trans[i],
            nuisances.sh[i],
            nuisances.light_dir[i],
        )
        for i in range(len(nuisances))
    ]
    faces = render_faces(renderer, draws)
    photos = photo_pool() if any(nuisances.occluders) else ()
    images, landmarks = [], []
    for i, face in enumerate(faces):
        seed = int(nuisances.seed[i])
        rngs = {
            name: np.random.default_rng([seed, j])
            for j, name in enumerate(("context", "occluders", "camera", "landmarks"))
        }
        with_bg = nuisances.background_seed[i] >= 0
        if with_bg:
            bg = sample_background(
                np.random.default_rng(int(nuisances.background_seed[i])),
                (draw_size, draw_size),
                synth.backgrounds,
                image_size_for_blur=draw_size // k,
            )
        else:
            bg = np.zeros((draw_size, draw_size, 3), np.float32)
        comp = composite(
            face,
            nuisances.appearance[i],
            nuisances.light_dir[i],
            bg,
            list(nuisances.occluders[i]),
            k,
            rngs,
            synth.camera,
            synth.landmark_noise,
            synth.occluders.alpha_threshold,
            photos,
            synth.context if with_bg else None,
            float(nuisances.angles[i, 1]),
        )
        images.append(comp.image)
        landmarks.append(comp.landmarks)
    image = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    return image, torch.from_numpy(np.stack(landmarks)).float()


def to_uint8(crops: Tensor) -> Tensor:
    """``(N, 3, S, S)`` in [-1, 1] -> ``uint8`` (0..255)."""
    return ((crops.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)


def from_uint8(crops: Tensor) -> Tensor:
    """``uint8`` crops -> float32 in [-1, 1]."""
    return crops.float() / 127.5 - 1.0


# ----------------------------------------------------------------------------- crop maker
_WORKER: _ChunkRenderer | None = None


class _ChunkRenderer:
    """Composes and crops chunks of views (one per process)."""

    def __init__(
        self, model, render: RenderSettings, s: IdentityDataSettings, synth: SynthSettings, crop_size: int
    ) -> None:
        self.renderer = FaceRenderer(model, replace(render, image_size=render.image_size * int(s.supersample)))
        self.s, self.synth, self.crop_size = s, synth, int(crop_size)

    def __call__(self, identities: Identities, nuisances: Nuisances) -> Tensor:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the same bytes in a worker and here
        try:
            image, lm = render_views(self.renderer, identities, nuisances, self.s, self.synth)
            return to_uint8(align_faces(image, lm, self.crop_size))
        finally:
            torch.set_num_threads(threads)


def _init_worker(*args) -> None:
    global _WORKER
    torch.set_num_threads(1)
    _WORKER = _ChunkRenderer(*args)


def _run_chunk(chunk: tuple[Identities, Nuisances]) -> Tensor:
    assert _WORKER is not None
    return _WORKER(*chunk)


class CropMaker:
    """Composes views of identities and crops them as the pipeline does; use as a context manager.

    With ``s.workers > 0`` the chunks (``s.batch_size`` views) are composed in that many spawned
    processes (one torch thread each), else in this process; the crops are the same either way.

    Args:
        model: the :class:`focus.facemodel.model.FaceModel`.
        render: the pipeline's render settings (``image_size`` is the output size).
        s: the identity-data settings.
        synth: the synthetic data's settings (distributions).
        crop_size: side of the aligned crops.
    """

    def __init__(
        self, model, render: RenderSettings, s: IdentityDataSettings, synth: SynthSettings, crop_size: int
    ) -> None:
        self.args = (model, render, s, synth, int(crop_size))
        self.s, self.synth, self.crop_size = s, synth, int(crop_size)
        self.layout = CoeffLayout.for_model(model)
        self.ambient = float(render.ambient)
        self.signed_exp = signed_expressions(model)
        self._local: _ChunkRenderer | None = None
        self._pool = None

    def __enter__(self) -> CropMaker:
        self._pool = spawn_pool(int(self.s.workers), _init_worker, self.args)
        return self

    def __exit__(self, *exc) -> None:
        close_pool(self._pool, failed=exc[0] is not None)
        self._pool = None

    def identities(self, rng: np.random.Generator, n: int) -> Identities:
        return sample_identities(rng, self.layout, n, self.synth)

    def nuisances(self, rng: np.random.Generator, n: int) -> Nuisances:
        return sample_nuisances(rng, self.layout, n, self.s, self.synth, self.ambient, self.signed_exp)

    def crops(self, identities: Identities, nuisances: Nuisances, desc: str | None = None) -> Tensor:
        """Aligned ``uint8`` crops ``(N, 3, S, S)`` of matching identities and nuisances."""
        n = len(nuisances)
        chunks = [
            (
                identities.take(np.arange(lo, min(n, lo + self.s.batch_size))),
                nuisances.take(np.arange(lo, min(n, lo + self.s.batch_size))),
            )
            for lo in range(0, n, self.s.batch_size)
        ]
        bar = tqdm(total=n, desc=desc, disable=desc is None, unit="view", leave=False)
        out = []
        try:
            if self._pool is not None and len(chunks) > 1:
                results = self._pool.imap(_run_chunk, chunks)
            else:
                if self._local is None:
                    self._local = _ChunkRenderer(*self.args)
                results = (self._local(*c) for c in chunks)
            for res in results:
                out.append(res)
                bar.update(len(res))
        finally:
            bar.close()
        return torch.cat(out) if out else torch.empty(0, 3, self.crop_size, self.crop_size, dtype=torch.uint8)


@dataclass(frozen=True)
class IdentitySet:
    """Aligned crops of several views per identity.

    Attributes:
        crops: ``(N, 3, S, S)`` uint8.
        labels: ``(N,)`` int64 identity index.
        targets: ``(N, 2 k)`` float32, the leading ``k`` identity and albedo coefficients of each
            crop's identity (for the auxiliary regression loss), or ``None``.
    """

    crops: Tensor
    labels: Tensor
    targets: Tensor | None = None

    @property
    def num_identities(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0


def make_identity_set(
    maker: CropMaker, rng: np.random.Generator, n_identities: int, views: int, desc: str | None = None
) -> IdentitySet:
    """Draw ``n_identities`` identities and ``views`` views of each; compose and crop them."""
    ids = maker.identities(rng, n_identities)
    labels = np.repeat(np.arange(n_identities), views)
    nuis = maker.nuisances(rng, len(labels))
    crops = maker.crops(ids.take(labels), nuis, desc)
    k = int(maker.s.target_components)
    targets = torch.from_numpy(np.concatenate([ids.id[:, :k], ids.albedo[:, :k]], axis=1)[labels].astype(np.float32))
    return IdentitySet(crops, torch.from_numpy(labels), targets)
