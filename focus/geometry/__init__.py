"""Geometry shared by the package: similarity fits, landmark subsets, mesh geometry."""
