"""Differentiable image formation: camera, rasterizer backends, spherical-harmonics shading.

* :mod:`focus.render.camera` - every coordinate frame and the projection (read this first).
* :mod:`focus.render.rasterizer` - the visibility pass (backends: pure PyTorch, nvdiffrast) and
  barycentric interpolation with gradients.
* :mod:`focus.render.shading` - vertex normals and spherical-harmonics irradiance.
* :mod:`focus.render.renderer` - face model + coefficients -> shaded image, mask, landmarks.
"""
