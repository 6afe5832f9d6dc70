"""Regular grids over a box and their iso-surfaces: the grid shape and marching cubes with one winding rule.

The radiance field (svd3d/recon/field.py) and its extraction (svd3d/recon/extract.py) lay their grids out with
`grid_shape`; the field's extraction, the visual hull (svd3d/recon/hull.py) and nerfacto's density export
(svd3d/recon/nerfstudio.py) take their surfaces from `marching_cubes`.
"""

from __future__ import annotations

import math

import numpy as np


def grid_shape(lo: np.ndarray, hi: np.ndarray, cells: int) -> tuple[tuple[int, int, int], float]:
    """Vertex counts per axis of a grid of cubic cells from `lo` over the box [lo, hi], `cells` cells along its
    longest side and at least 2 vertices along every axis (the grid covers the box, rounded up); the cell size."""
    size = float((hi - lo).max()) / cells
    shape = tuple(int(max(2, math.ceil((hi[i] - lo[i]) / size - 1e-6) + 1)) for i in range(3))
    return shape, size


def marching_cubes(volume: np.ndarray, level: float, spacing) -> tuple[np.ndarray, np.ndarray]:
    """The surface where a (X, Y, Z) volume crosses `level` (scikit-image's marching cubes), closed where it meets
    the volume's border (the volume is padded with one layer of zeros), and wound so that its normals point from
    higher values to lower ones: out of a dense object. (scikit-image winds the other way; its faces are reversed.)

    Returns vertices (V, 3) float64 in the padded volume's frame, `spacing` (3 cell sizes) per index:
    volume[i, j, k] lies at ((i + 1), (j + 1), (k + 1)) * spacing, so add the world position of padded index 0
    (one cell before volume[0, 0, 0]); and faces (F, 3) int. The volume must exceed `level` somewhere.
    """
    from skimage.measure import marching_cubes as skimage_marching_cubes

    verts, faces, _, _ = skimage_marching_cubes(np.pad(volume, 1), level=level, spacing=tuple(spacing))
    return verts, faces[:, ::-1]
