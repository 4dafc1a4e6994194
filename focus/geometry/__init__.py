"""Geometry shared by the package (numpy, float64 unless a function says otherwise), independent of any benchmark.

Modules: :mod:`~focus.geometry.similarity` (the one similarity / Umeyama fit, numpy and torch, and
the five alignment points of the 68 landmarks), :mod:`~focus.geometry.closest_points` (exact
closest points on triangles and meshes, unsigned point-to-surface distance),
:mod:`~focus.geometry.mesh_io` (OBJ/PLY reading and colourless OBJ writing with clear errors),
:mod:`~focus.geometry.normals` (face and vertex normals).
"""
