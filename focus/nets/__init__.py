"""The networks of FOCUS.

* :mod:`focus.nets.encoder` -- the reconstruction encoder (ResNet -> coefficient vector).
* :mod:`focus.nets.unet` -- the outlier-segmentation U-Net (render + target -> face mask).
* :mod:`focus.nets.iresnet` -- an insightface-arcface_torch-compatible iResNet (face recognition).
* :mod:`focus.nets.perceptual` -- the frozen face-recognition wrapper used by the losses.
* :mod:`focus.nets.face_align` -- 5-point similarity alignment onto the ArcFace template.
"""

from focus.nets.encoder import EncoderSettings, ReconstructionEncoder, build_encoder
from focus.nets.face_align import (
    align_faces,
    arcface_template,
    detector_five_points,
    estimate_similarity,
    warp_affine,
)
from focus.nets.iresnet import IResNet, IResNetSettings, build_iresnet, load_arcface
from focus.nets.perceptual import FaceFeatureBackbone, PerceptualNet
from focus.nets.unet import SegmentationUNet, UNetSettings

__all__ = [
    "EncoderSettings",
    "ReconstructionEncoder",
    "build_encoder",
    "align_faces",
    "arcface_template",
    "estimate_similarity",
    "detector_five_points",
    "warp_affine",
    "IResNet",
    "IResNetSettings",
    "build_iresnet",
    "load_arcface",
    "FaceFeatureBackbone",
    "PerceptualNet",
    "SegmentationUNet",
    "UNetSettings",
]
