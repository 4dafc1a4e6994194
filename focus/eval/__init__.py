"""Evaluation of trained FOCUS models: the misfit prior, NoW shape scores, segmentation metrics, reports.

* :mod:`focus.eval.settings` -- the ``params.yaml`` groups ``misfit_prior`` and ``eval``.
* :mod:`focus.eval.predict` -- a checkpoint run on a face-image folder through the training's
  5-point alignment: coefficients, neutral meshes, renders and masks (U-Net, robust pseudo mask,
  or none).
* :mod:`focus.eval.misfit_prior` -- the statistical misfit prior of ``docs/method.md`` section 5:
  estimation on fresh occluder-free synthetic faces, storage (``models/misfit_prior.npz``),
  application to predicted neutral shapes, and pictures.
* :mod:`focus.eval.now_predictions` -- predictions written in the NoW submission layout, scored
  with the NoW scorer's functions (:mod:`focus.now`), and the identity correlation against a
  synthetic set's true coefficients.
* :mod:`focus.eval.ar_metrics` -- per-image accuracy, precision, recall, F1 and IoU of the face
  class and F1 / IoU of the occluder class (``docs/evaluation.md`` section 2), soft and thresholded,
  and their summaries.
* :mod:`focus.eval.celebahq` -- the CelebAMask-HQ layout, visible-face masks from its part labels,
  the synthetic set in that layout, and its scoring (stage ``eval_celebahq``).
* :mod:`focus.eval.ablations` -- the ablations as DVC experiments and ``reports/ablations.md``.
* :mod:`focus.eval.grids` -- image grids (input, reconstruction, estimated mask, true mask).
* :mod:`focus.eval.report` -- ``reports/README.md``, the headline block of the project README,
  target checks and per-round plots, from the metrics files only.
* :mod:`focus.eval.pipeline` -- the DVC stages ``misfit_prior``, ``eval_now``, ``eval_ar``, ``eval_celebahq``,
  ``report``.
"""
