"""Rays through pixels, Embree ray casting (open3d) and the occlusion edges of what a ray cast sees.

The one pixel convention (svd3d/cameras.py's cameras): pixel (u, v), u right and v down, spans
[u, u + 1) x [v, v + 1); the ray through its centre has the camera-space direction
((u + 0.5 - cx) / fl_x, -(v + 0.5 - cy) / fl_y, -1) in OpenGL camera axes (+X right, +Y up, looking down -Z).
`pixel_grid` writes it; the ray builders below only combine its coordinates with camera-to-world matrices:

- `grid_rays` / `subpixel_rays`: float32 rays [origin, direction] with the direction left unnormalised (camera
  z = -1), so a hit's t is its depth along the camera's -Z axis. The renderer and the texture bake use them.
- `pixel_rays`: float32 origins and unit directions, computed in float64. The radiance field and the hull's floor
  check use them.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from svd3d.errors import SVD3DError
from svd3d.geometry.surface import CREASE_DEG

EDGE_DEPTH_JUMP = 0.02  # relative depth change between neighbouring pixels that counts as an occlusion edge


class Pinhole(Protocol):
    """What the ray builders read of a camera's intrinsics (svd3d.cameras.Intrinsics has it), in pixels."""

    width: int
    height: int
    fl_x: float
    fl_y: float
    cx: float
    cy: float


def import_open3d():
    """Import open3d lazily (it is slow to load), with an error naming the fix for the usual headless failure."""
    try:
        import open3d
    except (ImportError, OSError) as err:
        if "libusb" in str(err):
            raise SVD3DError(
                f"open3d cannot load libusb ({err}); install it with `apt-get install libusb-1.0-0`"
            ) from None
        raise SVD3DError(f"rendering needs open3d (pip install open3d): {err}") from None
    return open3d


def raycasting_scene(mesh):
    """An open3d (Embree) RaycastingScene holding the mesh's triangles: the one place svd3d builds one."""
    o3d = import_open3d()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.asarray(mesh.vertices, np.float32)), o3d.core.Tensor(np.asarray(mesh.faces, np.uint32))
    )
    return scene


# ------------------------------------------------------------------------------------------------ pixel rays


def pixel_grid(intr: Pinhole, supersample: int = 1, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Camera-space ray directions (x, y, -1) of s x s rays per pixel: x (W, s) and y (H, s), computed in float64
    and given as `dtype`. Pixel u's rays pass through u + (i + 0.5) / s (s = 1: its centre, u + 0.5)."""
    sub = (np.arange(supersample) + 0.5) / supersample
    u = np.arange(intr.width)[:, None] + sub[None, :]
    v = np.arange(intr.height)[:, None] + sub[None, :]
    return ((u - intr.cx) / intr.fl_x).astype(dtype), (-(v - intr.cy) / intr.fl_y).astype(dtype)


def grid_rays(c2w: np.ndarray, grid: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(B, 4, 4) camera-to-world, a 1-sample float32 `pixel_grid` (or a crop of one) -> (B, H*W, 6) float32 rays
    [origin, direction = x X + y Y - Z], row-major; unnormalised so that t is the distance along camera -Z."""
    x, y = grid[0][:, 0], grid[1][:, 0]  # (W,), (H,)
    axes = c2w[:, :3, :3].astype(np.float32)  # columns: camera X, Y, Z in world space
    rays = np.empty((len(c2w), len(y), len(x), 6), dtype=np.float32)
    rays[..., :3] = c2w[:, None, None, :3, 3]
    np.multiply(x[None, None, :, None], axes[:, None, None, :, 0], out=rays[..., 3:])
    rays[..., 3:] += (y[None, :, None] * axes[:, None, :, 1] - axes[:, None, :, 2])[:, :, None, :]
    return rays.reshape(len(c2w), -1, 6)


def subpixel_rays(c2w: np.ndarray, grid: tuple[np.ndarray, np.ndarray], view: np.ndarray, pixel: np.ndarray):
    """The s x s rays of K chosen pixels: (B, 4, 4), an s-sample float32 `pixel_grid`, (K,) view and pixel
    (v * W + u) indices -> (K, s*s, 6) float32, directions unnormalised as in `grid_rays`."""
    x, y = grid  # (W, s), (H, s)
    width, s = x.shape
    axes = c2w[view, :3, :3].astype(np.float32)  # (K, 3, 3)
    xs, ys = x[pixel % width], y[pixel // width]  # (K, s)
    rays = np.empty((len(view), s, s, 6), dtype=np.float32)
    rays[..., :3] = c2w[view, None, None, :3, 3]
    rays[..., 3:] = (
        xs[:, None, :, None] * axes[:, None, None, :, 0]
        + (ys[:, :, None] * axes[:, None, :, 1] - axes[:, None, :, 2])[:, :, None, :]
    )
    return rays.reshape(len(view), s * s, 6)


def pixel_rays(c2w: np.ndarray, intr: Pinhole) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4, 4) OpenGL camera-to-world -> origins (N*H*W, 3) and unit directions (N*H*W, 3) float32 of the rays
    through the pixel centres, view-major then row-major (directions rotated and normalised in float64)."""
    x, y = pixel_grid(intr, 1, np.float64)
    u, v = x[:, 0], y[:, 0]
    cam = np.stack([*np.meshgrid(u, v, indexing="xy"), -np.ones((intr.height, intr.width))], -1).reshape(-1, 3)
    dirs = np.einsum("nij,pj->npi", c2w[:, :3, :3], cam)  # (N, P, 3)
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    origins = np.broadcast_to(c2w[:, None, :3, 3], dirs.shape)
    return origins.reshape(-1, 3).astype(np.float32), dirs.reshape(-1, 3).astype(np.float32)


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
