"""The offline identity (face-recognition / perceptual) network the pipeline trains itself.

ArcFace weights cannot be downloaded here; when a user has them they load with
:meth:`focus.nets.perceptual.PerceptualNet.from_arcface`. Otherwise the ``idnet`` stage trains a
small iResNet on synthetic renders of many identities with an ArcFace loss:

* :mod:`focus.idnet.margin` -- the additive angular margin head;
* :mod:`focus.idnet.data` -- synthetic identities, their views, aligned crops;
* :mod:`focus.idnet.network` -- settings, checkpoint file, :func:`load_identity_net`;
* :mod:`focus.idnet.training` -- the training loop (resumable);
* :mod:`focus.idnet.verification` -- ROC AUC, TAR at FAR (numpy);
* :mod:`focus.idnet.evaluation` -- held-out verification, per-factor sensitivity, ROC plot;
* :mod:`focus.idnet.stage` -- the DVC stage.
"""

from focus.idnet.margin import ArcMarginHead, arc_margin_logits
from focus.idnet.network import (
    IdentityNetSettings,
    build_identity_net,
    load_identity_backbone,
    load_identity_net,
    save_identity_net,
)
from focus.idnet.verification import pair_scores, roc_auc, roc_curve, tar_at_far

__all__ = [
    "ArcMarginHead",
    "arc_margin_logits",
    "IdentityNetSettings",
    "build_identity_net",
    "load_identity_backbone",
    "load_identity_net",
    "save_identity_net",
    "pair_scores",
    "roc_auc",
    "roc_curve",
    "tar_at_far",
]
