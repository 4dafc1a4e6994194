"""FOCUS on your own photos: ``focus reconstruct`` and ``focus prepare``.

* :mod:`focus.apps.photos` -- finding the images among the inputs and reading them robustly (grey,
  RGBA, 16-bit, EXIF orientation; truncated, unreadable and oversized files reported by name).
* :mod:`focus.apps.detect` -- face detectors behind one small interface: MTCNN's 5 points
  (``facenet-pytorch``), MediaPipe's face mesh mapped to the 68 iBUG points, landmarks from a CSV.
* :mod:`focus.apps.reconstruct` -- the trained model on aligned crops, in batches, and the
  ``focus reconstruct`` loop (one folder of results per image, written atomically).
* :mod:`focus.apps.exports` -- meshes (coloured OBJ, colourless NoW OBJ + 7 landmarks), masks
  pasted back into the photo, overlays, coefficients as JSON.
* :mod:`focus.apps.summary` -- ``summary.html`` and a contact sheet of all faces.
* :mod:`focus.apps.prepare` -- ``focus prepare``: a photo collection -> a training folder.
* :mod:`focus.apps.cli` -- the two subcommands.

The detectors are optional extras (``pip install -e '.[detect]'``, see the README for the
``--no-deps`` step that keeps torch): nothing here imports them before they are needed.
"""
