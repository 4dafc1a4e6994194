"""The embedded default face model, generated from a seed by the project's own code.

``generate_face_model(EmbeddedModelSettings(seed=0))`` builds a complete :class:`FaceModel`:

* **Mesh**: a front-face mesh (forehead to under the chin, cheek to cheek, just in front of the
  ears) on the symmetric grid of :mod:`focus.facemodel.template_mesh`, with a mouth slit. Model
  frame: mm, origin at the head centre (ear-canal level), ``+x`` subject's left, ``+y`` up, ``+z``
  out of the face; triangles counter-clockwise seen from ``+z``. Adult dimensions: eye outer
  corners about 91 mm apart, forehead top to chin about 195 mm, nose tip about 110 mm in front of
  the origin.
* **Identity**: PCA (:mod:`focus.facemodel.pca`) of ``population_size`` faces sampled from the
  anatomy distribution of :mod:`focus.facemodel.face_shape` (correlated traits, nonlinear
  geometry, plus random local bumps); ``mean_shape`` is the population mean, ``id_basis`` the
  first ``n_id`` std-scaled modes, ``id_std`` their std (mm, as the norm over all vertices).
* **Expression**: designed blendshapes orthogonalised with Löwdin's method
  (:mod:`focus.facemodel.expressions`); ``exp_std`` is 1 (blendshape weights, not std scores).
* **Albedo**: PCA of ``albedo_population_size`` sampled skin maps
  (:mod:`focus.facemodel.albedo_model`), light to dark.
* **Landmarks**: iBUG-68 and NoW-7 vertex ids (:mod:`focus.facemodel.landmarks`).
* **Regions**: ``face``, ``skin``, ``eyes``, ``brows``, ``lips``, ``nose``, ``nostrils``,
  ``beard``, ... (:mod:`focus.facemodel.regions`).

Everything depends only on the settings (``seed`` included): the same settings give identical
arrays. :func:`template_uv` gives the per-vertex canonical frontal coordinates (mm), a 2D
parametrisation for painting texture (eyes, brows, beard) onto the model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from scipy.optimize import brentq

from focus.config import check_fields, param
from focus.facemodel import face_shape as fs
from focus.facemodel.albedo_model import sample_albedo
from focus.facemodel.expressions import expression_basis, expression_names
from focus.facemodel.landmarks import ibug68_landmarks, now_landmarks
from focus.facemodel.model import FaceModel
from focus.facemodel.pca import fit_pca
from focus.facemodel.regions import region_masks, soft_regions
from focus.facemodel.template_mesh import TemplateMesh, build_template_mesh, vertex_normals

#: Number of designed expression modes (the largest allowed ``n_exp``).
N_EXPRESSIONS = len(expression_names())


@dataclass(frozen=True)
class EmbeddedModelSettings:
    """How the embedded model is generated (``params.yaml`` group ``facemodel``).

    Attributes:
        seed: random seed of the identity and albedo populations.
        resolution: mesh density: grid columns (made odd), 31 to 151; the mesh has about
            ``0.96 * resolution**2`` vertices (31 -> 941; 71 -> 4,853; 125 -> 15,045).
        population_size: number of sampled faces the identity PCA is fitted to.
        albedo_population_size: number of sampled albedo maps the albedo PCA is fitted to.
        n_id: identity components kept (< population_size).
        n_exp: expression modes kept (at most :data:`N_EXPRESSIONS`), in the order of
            :func:`focus.facemodel.expressions.expression_names`.
        n_albedo: albedo components kept (< albedo_population_size).
        bumps_per_face: random local bumps per sampled face (individual detail; PCA tail).
        name: the model's name.
    """

    seed: int = param(0, ge=0)
    resolution: int = param(71, ge=31, le=151)
    population_size: int = param(300, ge=2)
    albedo_population_size: int = param(300, ge=2)
    n_id: int = param(80, ge=1)
    n_exp: int = param(N_EXPRESSIONS, ge=1, le=N_EXPRESSIONS)
    n_albedo: int = param(80, ge=1)
    bumps_per_face: int = param(14, ge=0)
    name: str = "focus-embedded"

    def __post_init__(self) -> None:
        check_fields(self)
        if not 1 <= self.n_id < self.population_size:
            raise ValueError(f"n_id ({self.n_id}) must be in [1, population_size={self.population_size})")
        if not 1 <= self.n_albedo < self.albedo_population_size:
            raise ValueError(
                f"n_albedo ({self.n_albedo}) must be in [1, albedo_population_size={self.albedo_population_size})"
            )


def _phi_for_canonical_y(y: float) -> float:
    """Elevation of the midline ray whose mean base point has height ``y`` (mm)."""
    f = lambda ph: fs.canonical_coordinates(np.array([0.0]), np.array([ph]))[0, 1] - y  # noqa: E731
    return float(brentq(f, -1.45, 1.45, xtol=1e-12))


@lru_cache(maxsize=8)
def template_mesh(resolution: int) -> TemplateMesh:
    """The embedded model's template mesh at ``resolution`` columns (cached)."""
    phi_mouth = _phi_for_canonical_y(fs.ANATOMY["mouth"][1])
    corner_x = fs.ANATOMY["mouth_corner"][0]
    f = lambda th: fs.canonical_coordinates(np.array([th]), np.array([phi_mouth]))[0, 0] - corner_x  # noqa: E731
    return build_template_mesh(
        resolution,
        phi_mouth=phi_mouth,
        phi_top=_phi_for_canonical_y(100.0),
        phi_top_side=np.radians(30.0),
        mouth_corner_theta=float(brentq(f, 0.0, 1.2, xtol=1e-12)),
    )


def template_uv(settings: EmbeddedModelSettings = EmbeddedModelSettings()) -> np.ndarray:
    """``(V, 2)`` float32 canonical frontal coordinates ``(X, Y)`` of each vertex, mm.

    A fixed 2D parametrisation of the embedded mesh (the same for every identity and
    expression): ``X`` to the subject's left, ``Y`` up, origin at the head centre; anatomical
    points are at :data:`focus.facemodel.face_shape.ANATOMY` (e.g. eye centres at
    ``(+-31, 27)``, mouth at ``(0, -45)``). Both copies of a mouth-slit vertex share coordinates.
    """
    t = template_mesh(settings.resolution)
    return fs.canonical_coordinates(t.theta, t.phi).astype(np.float32)


def _identity_population(
    settings: EmbeddedModelSettings, t: TemplateMesh, xy: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    samples = np.empty((settings.population_size, t.num_vertices * 3), dtype=np.float64)
    for i in range(settings.population_size):
        p = fs.sample_face_shape_params(rng)
        bumps = fs.random_bumps(rng, xy[:, 0], xy[:, 1], n=settings.bumps_per_face)
        samples[i] = fs.face_vertices(t.theta, t.phi, xy, p, bumps).ravel()
    return samples


def _albedo_population(
    settings: EmbeddedModelSettings, xy: np.ndarray, soft: dict, rng: np.random.Generator
) -> np.ndarray:
    V = xy.shape[0]
    samples = np.empty((settings.albedo_population_size, V * 3), dtype=np.float64)
    for i in range(settings.albedo_population_size):
        samples[i] = sample_albedo(rng, xy, soft).ravel()
    return samples


def generate_face_model(settings: EmbeddedModelSettings = EmbeddedModelSettings(), verbose: bool = False) -> FaceModel:
    """Build the embedded model (deterministic in ``settings``; a few seconds at the default)."""
    t0 = time.perf_counter()
    t = template_mesh(settings.resolution)
    V = t.num_vertices
    xy = fs.canonical_coordinates(t.theta, t.phi)
    id_seq, alb_seq = np.random.SeedSequence(settings.seed).spawn(2)

    # identity: PCA of a sampled population
    id_pca = fit_pca(_identity_population(settings, t, xy, np.random.default_rng(id_seq)), settings.n_id)
    mean_shape = id_pca.mean.reshape(V, 3)
    normals = vertex_normals(mean_shape, t.triangles)

    # landmarks, regions, expressions on the mean shape
    lm68 = ibug68_landmarks(t, xy, mean_shape, normals)
    regions = region_masks(xy, t.lip_side, normals)
    _, exp_basis, _ = expression_basis(t, xy, mean_shape, settings.n_exp)

    # albedo: PCA of sampled skin maps
    soft = soft_regions(xy, t.lip_side)
    alb_pca = fit_pca(_albedo_population(settings, xy, soft, np.random.default_rng(alb_seq)), settings.n_albedo)

    f32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    model = FaceModel(
        mean_shape=f32(mean_shape),
        id_basis=f32(id_pca.basis.reshape(-1, V, 3)),
        exp_basis=f32(exp_basis),
        mean_albedo=f32(alb_pca.mean.reshape(V, 3)),
        albedo_basis=f32(alb_pca.basis.reshape(-1, V, 3)),
        triangles=torch.from_numpy(t.triangles.astype(np.int64)),
        landmarks68=torch.from_numpy(lm68.astype(np.int64)),
        now_landmarks7=torch.from_numpy(now_landmarks(lm68)),
        regions={k: torch.from_numpy(v) for k, v in regions.items()},
        id_std=f32(id_pca.std),
        exp_std=torch.ones(exp_basis.shape[0], dtype=torch.float32),
        albedo_std=f32(alb_pca.std),
        name=f"{settings.name} (seed {settings.seed}, resolution {settings.resolution})",
    )
    if verbose:
        print(
            f"embedded face model: {V} vertices, {t.triangles.shape[0]} triangles, "
            f"{settings.n_id}/{settings.n_exp}/{settings.n_albedo} components, {time.perf_counter() - t0:.1f} s"
        )
    return model.validate(settings.name)
