"""3D morphable face models: one in-memory form (:class:`FaceModel`) and loaders for every format."""

from focus.facemodel.model import NOW_LANDMARKS_FROM_IBUG68, FaceModel, load_face_model, save_face_model

__all__ = ["FaceModel", "NOW_LANDMARKS_FROM_IBUG68", "load_face_model", "save_face_model"]
