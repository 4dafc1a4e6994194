"""focus: robust model-based 3D face reconstruction through weakly-supervised outlier segmentation.

An implementation of FOCUS (Li et al., CVPR 2023). See ``README.md`` for the quickstart and
``focus/render/camera.py`` for the coordinate frames used throughout the package.
"""

__version__ = "0.1.0"
