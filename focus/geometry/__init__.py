"""General triangle-mesh geometry (numpy, float64), independent of any benchmark.

Modules: :mod:`~focus.geometry.closest_points` (exact closest points on triangles and meshes,
unsigned point-to-surface distance), :mod:`~focus.geometry.mesh_io` (OBJ/PLY reading and
colourless OBJ writing with clear errors), :mod:`~focus.geometry.normals` (face and vertex
normals).
"""
