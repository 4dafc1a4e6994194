"""Training of FOCUS: unsupervised initialisation, pseudo masks and U-Net pre-training, EM rounds.

* :mod:`focus.train.settings` -- the ``params.yaml`` groups ``train``, ``init``, ``pretrain_seg``, ``em``.
* :mod:`focus.train.steps` -- the objective of one step of each phase.
* :mod:`focus.train.trainer` -- the loop: modes, optimisers, non-finite skips, checkpoints, dvclive, DDP.
* :mod:`focus.train.data` -- step-indexed (resumable, distributed) batches.
* :mod:`focus.train.state` -- atomic, resumable checkpoints.
* :mod:`focus.train.pseudo_masks` -- the pseudo masks ``z(p)`` as PNG.
* :mod:`focus.train.metrics`, :mod:`focus.train.validation`, :mod:`focus.train.report` -- validation after every phase.
* :mod:`focus.train.pipeline` -- the stages ``init``, ``pretrain_seg``, ``em`` and :func:`load_trained`.
* :mod:`focus.train.cli` -- ``focus train STAGE`` and the ``stages/train_*.py`` scripts.
"""
