"""Reconstruction: from posed views (svd3d's camera convention) to a mesh.

Stages, each a module: `hull` (visual hull carving from silhouettes, the baseline and the initial occupancy for
later fits); radiance-field fitting, mesh extraction, cleanup, UV unwrapping and texture baking follow.
"""
