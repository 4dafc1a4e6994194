"""Turning a list of image jobs into finished images, in chunks, optionally in worker processes.

Determinism: job ``(set, index)`` draws only from generators seeded with
``(seed, SET_IDS[set], index, stream)``; subject-level traits (identity, albedo, hair and eye
colour, beard) from ``(seed, SET_IDS[set], SUBJECT_STREAM, subject)``. Jobs are rendered in
fixed chunks (``batch_size`` consecutive jobs of one set and camera) with one torch thread, so
the bytes written do not depend on the number of worker processes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from focus.parallel import close_pool, spawn_pool
from focus.synth.appearance import sample_appearance
from focus.synth.backgrounds import BackgroundSettings, photo_pool, sample_background
from focus.synth.compose import Composite, composite, render_faces
from focus.synth.occluders import sample_kinds
from focus.synth.sampling import FaceDraw, sample_face, signed_expressions
from focus.synth.settings import SynthSettings

SET_IDS = {"train": 1, "now": 2, "ar": 3, "test": 9}
SUBJECT_STREAM = 1_000_000
STREAMS = ("face", "appearance", "background", "occluders", "paint", "camera", "landmarks", "kinds", "context", "box")


@dataclass(frozen=True)
class CameraSpec:
    """A rendering camera: output size, supersampling, distance (mm) and focal at 224 px."""

    image_size: int
    supersample: int
    distance: float = 1000.0
    focal_at_224: float = 1015.0


@dataclass(frozen=True)
class ImageJob:
    """One image to make.

    Attributes:
        set_name, index: seed key (``index`` unique within the set).
        camera: how it is rendered.
        subject: subject id whose identity/appearance it shares (``None``: its own).
        neutral: ``True`` neutral expression, ``False`` expressive, ``None`` drawn.
        max_angles_deg: ``(pitch, yaw, roll)`` limits (``None``: the sampling settings').
        trans_xy_mm, trans_z_mm: translation ranges (``None``: the sampling settings').
        occluder_prob: probability of occluders when ``occluder`` is ``None``.
        occluder: force this kind (``""``: none).
        plain_background: plain backdrop only (AR-like studio pictures).
    """

    set_name: str
    index: int
    camera: CameraSpec
    subject: int | None = None
    neutral: bool | None = None
    max_angles_deg: tuple[float, float, float] | None = None
    trans_xy_mm: float | None = None
    trans_z_mm: float | None = None
    occluder_prob: float = 0.0
    occluder: str | None = None
    plain_background: bool = False


@dataclass
class ImageResult:
    """A job's output: the composite and the coefficients that made it."""

    job: ImageJob
    draw: FaceDraw
    result: Composite


def rng_for(seed: int, set_name: str, index: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), SET_IDS[set_name], int(index), STREAMS.index(stream)])


class SynthWorker:
    """Renders chunks of jobs (one per process; holds the model, renderers and photos)."""

    def __init__(self, model, settings: SynthSettings, render_backend: str = "torch", ambient: float = 0.8) -> None:
        self.model = model
        self.settings = settings
        self.backend = render_backend
        self.ambient = ambient
        self._renderers: dict[CameraSpec, object] = {}
        self.signed_exp = signed_expressions(model)

    def renderer(self, cam: CameraSpec):
        from focus.render.renderer import FaceRenderer, RenderSettings

        if cam not in self._renderers:
            rs = RenderSettings(
                image_size=cam.image_size * cam.supersample,
                backend=self.backend,
                ambient=self.ambient,
                distance=cam.distance,
                focal_at_224=cam.focal_at_224,
            )
            self._renderers[cam] = FaceRenderer(self.model, rs)
        return self._renderers[cam]

    def draw(self, job: ImageJob) -> FaceDraw:
        s = self.settings
        m = self.model
        sp = s.sampling
        if job.trans_xy_mm is not None or job.trans_z_mm is not None:
            sp = replace(
                sp,
                trans_xy_mm=sp.trans_xy_mm if job.trans_xy_mm is None else job.trans_xy_mm,
                trans_z_mm=sp.trans_z_mm if job.trans_z_mm is None else job.trans_z_mm,
            )
        lim = job.max_angles_deg or (None, None, None)
        d = sample_face(
            rng_for(s.seed, job.set_name, job.index, "face"),
            m.n_id,
            m.n_exp,
            m.n_albedo,
            sp,
            self.ambient,
            neutral=job.neutral,
            pitch_max_deg=lim[0],
            yaw_max_deg=lim[1],
            roll_max_deg=lim[2],
            signed_exp=self.signed_exp,
        )
        if job.subject is not None:
            subj = rng_for(s.seed, job.set_name, SUBJECT_STREAM + job.subject, "face")
            d = replace(
                d, id=subj.normal(0, 1, m.n_id) * sp.id_scale, albedo=subj.normal(0, 1, m.n_albedo) * sp.albedo_scale
            )
        return d

    def run(self, jobs: list[ImageJob]) -> list[ImageResult]:
        if not jobs:
            return []
        cam = jobs[0].camera
        if any(j.camera != cam for j in jobs):
            raise ValueError("a chunk must share one camera")
        s = self.settings
        draws = [self.draw(j) for j in jobs]
        faces = render_faces(self.renderer(cam), draws)
        photos = photo_pool()
        out = []
        for job, draw, face in zip(jobs, draws, faces):
            key = (s.seed, job.set_name, job.index)
            app_key = (s.seed, job.set_name, SUBJECT_STREAM + job.subject) if job.subject is not None else key
            appearance = sample_appearance(rng_for(*app_key, "appearance"), s.appearance)
            bg_settings = (
                s.backgrounds
                if not job.plain_background
                else BackgroundSettings(photo_prob=0.0, plain_prob=1.0, blur_max_px=0.0)
            )
            H, W = face.size
            bg = sample_background(rng_for(*key, "background"), (H, W), bg_settings, image_size_for_blur=cam.image_size)
            if job.occluder is not None:
                kinds = [job.occluder] if job.occluder else []
            else:
                krng = rng_for(*key, "kinds")
                kinds = sample_kinds(krng, s.occluders) if krng.random() < job.occluder_prob else []
            rngs = {name: rng_for(*key, name) for name in ("occluders", "camera", "landmarks")}
            rngs["context"] = rng_for(*app_key, "context")  # a subject keeps its hair, ears, neck, clothes
            comp = composite(
                face,
                appearance,
                draw.light_dir,
                bg,
                kinds,
                cam.supersample,
                rngs,
                s.camera,
                s.landmark_noise,
                s.occluders.alpha_threshold,
                photos,
                s.context,
                float(draw.angles[1]),
            )
            out.append(ImageResult(job, draw, comp))
        return out


def chunk_jobs(jobs: list[ImageJob], batch_size: int) -> list[list[ImageJob]]:
    """Split into chunks of at most ``batch_size`` consecutive jobs sharing set and camera."""
    chunks: list[list[ImageJob]] = []
    for job in jobs:
        if (
            chunks
            and len(chunks[-1]) < batch_size
            and chunks[-1][0].camera == job.camera
            and chunks[-1][0].set_name == job.set_name
        ):
            chunks[-1].append(job)
        else:
            chunks.append([job])
    return chunks


_WORKER: SynthWorker | None = None


def _init_worker(model, settings: SynthSettings, backend: str, ambient: float) -> None:
    global _WORKER
    torch.set_num_threads(1)
    _WORKER = SynthWorker(model, settings, backend, ambient)


def _run_chunk(jobs: list[ImageJob]) -> list[ImageResult]:
    assert _WORKER is not None
    return _WORKER.run(jobs)


class SynthPool:
    """The workers that render chunks: ``workers`` spawned processes (one torch thread each), or
    this process when ``workers <= 0``. Reuse one pool for several sets (process start-up costs
    seconds). Use as a context manager."""

    def __init__(
        self, model, settings: SynthSettings, workers: int | None = None, backend: str = "torch", ambient: float = 0.8
    ) -> None:
        self.workers = settings.workers if workers is None else int(workers)
        self.args = (model, settings, backend, ambient)
        self._pool = None
        self._local: SynthWorker | None = None

    def __enter__(self) -> SynthPool:
        self._pool = spawn_pool(self.workers, _init_worker, self.args)
        return self

    def __exit__(self, *exc) -> None:
        close_pool(self._pool, failed=exc[0] is not None)
        self._pool = None

    def imap(self, chunks: list[list[ImageJob]]):
        """Results of each chunk, in order."""
        if self._pool is not None and len(chunks) > 1:
            yield from self._pool.imap(_run_chunk, chunks)
            return
        if self._local is None:
            self._local = SynthWorker(*self.args)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for ch in chunks:
                yield self._local.run(ch)
        finally:
            torch.set_num_threads(threads)


def run_jobs(
    model,
    settings: SynthSettings,
    jobs: list[ImageJob],
    workers: int | None = None,
    backend: str = "torch",
    ambient: float = 0.8,
    progress: str | None = None,
    pool: SynthPool | None = None,
):
    """Yield :class:`ImageResult` for ``jobs`` in order (fixed chunks; in ``pool``, or in a pool
    made for this call)."""
    from tqdm import tqdm

    chunks = chunk_jobs(jobs, settings.batch_size)
    bar = tqdm(total=len(jobs), desc=progress, unit="img", disable=progress is None, leave=False)
    try:
        if pool is not None:
            for res in pool.imap(chunks):
                bar.update(len(res))
                yield from res
        else:
            with SynthPool(model, settings, workers if len(chunks) > 1 else 0, backend, ambient) as own:
                for res in own.imap(chunks):
                    bar.update(len(res))
                    yield from res
    finally:
        bar.close()
