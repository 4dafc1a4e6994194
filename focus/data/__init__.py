"""Face-image folders: landmark CSVs, 5-point alignment, augmentation and the one dataset class.

* :mod:`focus.data.landmarks_csv` - the ``name,x1,y1,...,x68,y68`` file: reader with validation, writer.
* :mod:`focus.data.alignment` - the crop template and the 5-point image -> crop transform.
* :mod:`focus.data.augment` - the paper's shift / scale / rotation / flip augmentation.
* :mod:`focus.data.dataset` - :class:`FaceImageFolder`, the torch ``Dataset`` for synthetic and real folders.
"""

from focus.data.alignment import AlignmentTemplate, estimate_alignment, five_points, template_from_model
from focus.data.augment import AugmentSettings
from focus.data.dataset import DataSettings, FaceImageFolder
from focus.data.landmarks_csv import read_landmarks_csv, write_landmarks_csv

__all__ = [
    "AlignmentTemplate", "AugmentSettings", "DataSettings", "FaceImageFolder", "estimate_alignment", "five_points",
    "read_landmarks_csv", "template_from_model", "write_landmarks_csv",
]
