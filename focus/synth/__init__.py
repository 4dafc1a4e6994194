"""Synthetic face data with ground truth: the offline default that makes every claim measurable.

Modules, one per concept:

* :mod:`focus.synth.sampling` - distributions of identity, expression, albedo, pose, light.
* :mod:`focus.synth.appearance` - details the model cannot represent, painted per pixel
  (eyes, brows, lashes, lips, beards, freckles, make-up, skin texture, sheen).
* :mod:`focus.synth.occluders` - sunglasses, glasses, scarves, masks, hands, hair fringes,
  microphones, cups, pasted objects, textured shapes; each with exact coverage.
* :mod:`focus.synth.context` - hair, ears, neck and clothes behind the face.
* :mod:`focus.synth.backgrounds` - photographs shipped with scikit-image / matplotlib, procedural textures.
* :mod:`focus.synth.textures` - procedural noise and patterns.
* :mod:`focus.synth.compose` - one image: render, paint, compose, camera effects, ground truth.
* :mod:`focus.synth.generator` - image jobs, deterministic seeding, chunks and worker processes.
* :mod:`focus.synth.scans` - NoW-like scans (extended, subdivided, detailed neutral shapes).
* :mod:`focus.synth.sets` - the train / NoW-like / AR-like sets and their on-disk layouts.
* :mod:`focus.synth.writers` - byte-deterministic image, mask, archive and table writers.
* :mod:`focus.synth.contact_sheet` - contact sheets with masks and landmarks overlaid.
* :mod:`focus.synth.stage` - the ``synth`` DVC stage.
* :mod:`focus.synth.settings` - the ``synth`` parameter group.
"""
