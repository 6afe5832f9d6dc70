"""Embree ray casting (open3d) and the occlusion edges of what a ray cast sees.

Rays come from svd3d/cameras.py's pixel convention (`pixel_grid`, `grid_rays`, `pixel_rays`); `raycasting_scene`
is the one place svd3d builds a scene to cast them against; `edge_pixels` finds where a cast's pixels mix two
surfaces (the renderer supersamples there, the texture bake does not trust them).
"""

from __future__ import annotations

import numpy as np

from svd3d import signals
from svd3d.errors import SVD3DError
from svd3d.geometry.surface import CREASE_DEG

EDGE_DEPTH_JUMP = 0.02  # relative depth change between neighbouring pixels that counts as an occlusion edge


def import_open3d():
    """Import open3d lazily (it is slow to load), with an error naming the fix for the usual headless failure."""
    try:
        open3d = signals.import_whole("open3d")
    except (ImportError, OSError) as err:
        if "libusb" in str(err):
            raise SVD3DError(
                f"open3d cannot load libusb ({err}); install it with `apt-get install libusb-1.0-0`"
            ) from None
        raise SVD3DError(f"rendering needs open3d (pip install open3d): {err}") from None
    return open3d


_RAY_THREADS = [0]  # threads per ray cast; 0: all the cores (open3d's default)


def set_ray_threads(threads: int) -> None:
    """Cap the threads each ray cast of this process uses (0: all cores). Several processes sharing the cores (data
    workers, launcher ranks) each take their share, as they do for torch, or they fight over the cores."""
    _RAY_THREADS[0] = max(0, int(threads))


def cast_rays(scene, rays: np.ndarray) -> dict:
    """`scene.cast_rays` on (..., 6) float32 rays with this process's thread cap -> open3d's result dict."""
    o3d = import_open3d()
    return scene.cast_rays(o3d.core.Tensor(rays), nthreads=_RAY_THREADS[0])


def raycasting_scene(mesh):
    """An open3d (Embree) RaycastingScene holding the mesh's triangles: the one place svd3d builds one."""
    o3d = import_open3d()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.asarray(mesh.vertices, np.float32)), o3d.core.Tensor(np.asarray(mesh.faces, np.uint32))
    )
    return scene


# ------------------------------------------------------------------------------------------------ edges


def edge_pixels(hit: np.ndarray, t: np.ndarray, face: np.ndarray, face_normals: np.ndarray) -> np.ndarray:
    """(B, H, W) pixel-centre hits, depths and faces -> (B, H, W) bool: pixels on an edge of what they show.

    Both pixels of a 4-neighbour pair are marked where one hits and the other misses (silhouettes), where depth
    jumps by more than `EDGE_DEPTH_JUMP` of itself (occlusions) or where the faces meet at a crease (`CREASE_DEG`).
    The renderer supersamples these pixels; the texture bake does not trust them (they mix two surfaces).
    """
    normals = face_normals[np.where(hit, face, 0)]  # (B, H, W, 3)
    cos_crease = np.cos(np.radians(CREASE_DEG))
    edge = np.zeros(hit.shape, dtype=bool)
    for axis in (1, 2):
        n = hit.shape[axis] - 1
        first, second = (slice(None),) * axis + (slice(0, n),), (slice(None),) * axis + (slice(1, n + 1),)
        h0, h1, t0, t1 = hit[first], hit[second], t[first], t[second]
        both = h0 & h1
        with np.errstate(invalid="ignore"):
            jump = np.abs(t0 - t1) > EDGE_DEPTH_JUMP * np.minimum(t0, t1)
        crease = np.einsum("...c,...c->...", normals[first], normals[second]) < cos_crease
        differ = (h0 != h1) | (both & (jump | crease))
        edge[first] |= differ
        edge[second] |= differ
    return edge
