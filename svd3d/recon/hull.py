"""Visual hull carving: keep the voxels whose centres project inside every silhouette.

The baseline of the reconstruction stage and the check that cameras are right: with true cameras the hull's
silhouettes reproduce the masks; with wrong ones (say, azimuths mirrored) views disagree and carve each other
away. Cameras follow svd3d/cameras.py: OpenGL camera-to-world matrices, and a world point at camera-space
(x, y, z), z < 0, lands in pixel (floor(cx + fl_x x / -z), floor(cy - fl_y y / -z)), the pixel whose centre ray
svd3d.cameras.pixel_grid gives as ((u + 0.5 - cx) / fl_x, -(v + 0.5 - cy) / fl_y, -1).

Points that project outside an image (or lie behind its camera) are "unknown" to that view by default: a view
carves only what it sees, so an object cut by one frame's border is not cut in 3D. A voxel that no view sees at
all is dropped. ``outside="empty"`` instead treats the space outside every frame as background.

Generated views drift a little from view to view, and a hull is an intersection: every drifted silhouette cuts.
`carve_visual_hull` can keep voxels that miss a few silhouettes (`max_misses`) or miss them by less than a band
(`tolerance`), with trusted views (`hard_views`, the input view) still exact. `svd3d recon` bounds its radiance
field by such a tolerant hull (FieldSettings.hull_tolerance); its hull method and the floor use the exact one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from svd3d import signals
from svd3d.cameras import Intrinsics, pixel_rays
from svd3d.errors import SVD3DError
from svd3d.geometry import import_open3d, marching_cubes, raycasting_scene
from svd3d.render import render_silhouettes

if TYPE_CHECKING:
    import trimesh

Outside = Literal["unknown", "empty"]


@dataclass(frozen=True)
class HullGrid:
    """A voxel occupancy grid over an axis-aligned box of the world."""

    occupancy: np.ndarray  # (R, R, R) bool, indexed [ix, iy, iz] along world x, y, z
    axes: tuple[np.ndarray, np.ndarray, np.ndarray]  # voxel-centre coordinates along x, y, z, each (R,) float64

    @property
    def voxel_size(self) -> np.ndarray:
        """(3,) float edge lengths of one voxel."""
        return np.array([a[1] - a[0] if len(a) > 1 else 0.0 for a in self.axes])

    def points(self) -> np.ndarray:
        """(M, 3) float64 centres of the occupied voxels."""
        ix, iy, iz = np.nonzero(self.occupancy)
        return np.stack([self.axes[0][ix], self.axes[1][iy], self.axes[2][iz]], axis=-1)

    def bounds(self) -> np.ndarray:
        """(2, 3) float64 [min, max] corners of the occupied voxels' boxes (centres -+ half a voxel)."""
        if not self.occupancy.any():
            raise SVD3DError("the visual hull is empty: the silhouettes share no volume (check the cameras)")
        pts = self.points()
        half = self.voxel_size / 2
        return np.stack([pts.min(axis=0) - half, pts.max(axis=0) + half])

    def volume(self) -> float:
        return float(self.occupancy.sum() * np.prod(self.voxel_size))

    def to_mesh(self) -> trimesh.Trimesh:
        """The hull's surface (marching cubes between occupied and empty voxel centres), in world coordinates."""
        trimesh = signals.import_whole("trimesh")

        if not self.occupancy.any():
            raise SVD3DError("the visual hull is empty: the silhouettes share no volume (check the cameras)")
        size = self.voxel_size
        # zero-padded by marching_cubes: a closed surface where the hull meets the grid edge, normals outward
        verts, faces = marching_cubes(self.occupancy.astype(np.float32), 0.5, size)
        origin = np.array([a[0] for a in self.axes]) - size  # world position of padded index 0
        return trimesh.Trimesh(verts + origin, faces, process=False)


def _grid_bounds(bounds) -> tuple[np.ndarray, np.ndarray]:
    """0.5 -> the cube [-0.5, 0.5]^3; (lo, hi) with floats or (3,) arrays -> a box."""
    if np.ndim(bounds) == 0:
        lo, hi = -abs(float(bounds)) * np.ones(3), abs(float(bounds)) * np.ones(3)
    else:
        if len(bounds) != 2:
            raise SVD3DError(f"bounds must be a half-size or (min, max), got {bounds!r}")
        lo, hi = (np.broadcast_to(np.asarray(b, dtype=np.float64), (3,)).copy() for b in bounds)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all() and (hi > lo).all()):
        raise SVD3DError(f"bounds must be finite with max > min on every axis, got {lo.tolist()}, {hi.tolist()}")
    return lo, hi


def _binary(masks: np.ndarray) -> np.ndarray:
    masks = np.asarray(masks)
    if masks.dtype == bool:
        return masks
    if np.issubdtype(masks.dtype, np.integer):
        return masks > 127  # uint8 alpha
    return masks > 0.5


def carve_visual_hull(
    masks: np.ndarray,
    c2w: np.ndarray,
    intrinsics: Intrinsics,
    resolution: int = 128,
    bounds: float | tuple = 0.5,
    *,
    outside: Outside = "unknown",
    max_misses: int = 0,
    hard_views=(),
    tolerance: float = 0.0,
) -> HullGrid:
    """Carve a resolution^3 grid over `bounds` with N silhouettes.

    masks: (N, H, W) bool, uint8 alpha (> 127 is inside) or float (> 0.5); c2w: (N, 4, 4) OpenGL camera-to-world;
    one set of intrinsics. A voxel is kept iff its centre projects inside the silhouette of every view that sees
    it (see the module docstring for points outside an image) and at least one view sees it.

    Views that disagree a little (generated ones drift by a percent from view to view) carve real geometry away
    where any one of them is off. `max_misses` > 0 keeps a voxel that falls outside the silhouettes of at most that
    many views, so no single bad mask can cut; `tolerance` > 0 widens every silhouette but the hard views' by that
    fraction of the image's longer side (a voxel that misses a mask by less is not carved). The views indexed by
    `hard_views` (the input view, say) carve alone and exactly.
    """
    # 1. check inputs
    masks = _binary(masks)
    c2w = np.asarray(c2w, dtype=np.float64)
    if masks.ndim != 3 or masks.shape[1:] != (intrinsics.height, intrinsics.width):
        raise SVD3DError(
            f"masks must be (N, {intrinsics.height}, {intrinsics.width}) to match the intrinsics, got {masks.shape}"
        )
    if c2w.shape != (len(masks), 4, 4) or not np.isfinite(c2w).all():
        raise SVD3DError(f"c2w must be ({len(masks)}, 4, 4) finite matrices, one per mask, got {c2w.shape}")
    if isinstance(resolution, bool) or not isinstance(resolution, int | np.integer) or not 2 <= resolution <= 1024:
        raise SVD3DError(f"resolution must be an integer from 2 to 1024, got {resolution!r}")
    if outside not in ("unknown", "empty"):
        raise SVD3DError(f"outside must be 'unknown' or 'empty', got {outside!r}")
    if isinstance(max_misses, bool) or not isinstance(max_misses, int | np.integer) or max_misses < 0:
        raise SVD3DError(f"max_misses must be an integer >= 0, got {max_misses!r}")
    if not 0.0 <= tolerance < 0.5:
        raise SVD3DError(f"tolerance must be a fraction of the image side from 0 to 0.5, got {tolerance!r}")
    hard = np.zeros(len(masks), bool)
    hard[np.asarray(hard_views, dtype=np.int64)] = True
    if tolerance > 0:
        from scipy.ndimage import distance_transform_edt

        reach = tolerance * max(intrinsics.width, intrinsics.height)
        masks = np.stack(
            [m if must else distance_transform_edt(~m) <= reach for m, must in zip(masks, hard, strict=True)]
        )
    lo, hi = _grid_bounds(bounds)
    r = int(resolution)
    axes = tuple(lo[i] + (np.arange(r) + 0.5) * (hi[i] - lo[i]) / r for i in range(3))
    # 2. every voxel centre is a candidate; each view removes the candidates it sees on its background
    ix, iy, iz = np.meshgrid(*(np.arange(r, dtype=np.int32),) * 3, indexing="ij")
    index = np.arange(r**3)  # flat [ix, iy, iz] index of each remaining candidate
    points = np.stack([axes[0][ix.ravel()], axes[1][iy.ravel()], axes[2][iz.ravel()]], -1).astype(np.float32)
    del ix, iy, iz
    seen = np.zeros(len(points), dtype=bool)
    misses = np.zeros(len(points), dtype=np.int32)  # views whose background each candidate falls on
    w, h = intrinsics.width, intrinsics.height
    for mask, cam, must in zip(masks, c2w, hard, strict=True):
        local = (points - cam[:3, 3].astype(np.float32)) @ cam[:3, :3].astype(np.float32)  # (M, 3) camera space
        depth = -local[:, 2]
        front = depth > 1e-6
        with np.errstate(divide="ignore", invalid="ignore"):
            u = intrinsics.cx + intrinsics.fl_x * local[:, 0] / depth
            v = intrinsics.cy - intrinsics.fl_y * local[:, 1] / depth
        inside = front & (u >= 0) & (u < w) & (v >= 0) & (v < h)
        on_mask = np.zeros(len(points), dtype=bool)
        on_mask[inside] = mask[v[inside].astype(np.int64), u[inside].astype(np.int64)]
        miss = ~on_mask & inside if outside == "unknown" else ~on_mask
        misses += miss
        keep = ~miss if must else misses <= max_misses
        points, index, seen, misses = points[keep], index[keep], (seen | inside)[keep], misses[keep]
    # 3. voxels no view saw are unknown everywhere: drop them
    occupancy = np.zeros(r**3, dtype=bool)
    occupancy[index[seen]] = True
    return HullGrid(occupancy=occupancy.reshape(r, r, r), axes=axes)


def silhouette_iou(hull: HullGrid, masks: np.ndarray, c2w: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """(N,) float: intersection over union of the hull's rendered silhouettes with the masks, per view.

    With true cameras it is close to 1 in every view; with wrong ones (mirrored azimuths, a wrong field of view)
    the views carve each other away and it drops. An empty hull scores 0.
    """
    masks = _binary(masks)
    if not hull.occupancy.any():
        return np.zeros(len(masks))
    rendered = render_silhouettes(hull.to_mesh(), c2w, intrinsics)
    inter = (rendered & masks).sum(axis=(1, 2))
    union = (rendered | masks).sum(axis=(1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def lowest_rim_height(
    hull: HullGrid, masks: np.ndarray, c2w: np.ndarray, intrinsics: Intrinsics, rows: int = 2, quantile: float = 0.0
) -> float | None:
    """World height (y) of the lowest point known to lie on the object: per view, the rays through the lowest
    `rows` rows of its silhouette enter the hull on the silhouette's rim, which touches the object there; the
    lowest entry point over all views. None when no view gives one (views whose silhouette reaches the image's
    bottom edge are skipped: the object may go on below the frame). Use the exact hull (no tolerance): in a
    tolerant one, the rays of a view drifted down find the band below the object. `quantile` > 0 takes that
    quantile of the views' lowest entry points instead of the lowest: one view that drifted down cannot lower it."""
    if not 0.0 <= quantile <= 1.0:
        raise SVD3DError(f"quantile must be from 0 to 1, got {quantile!r}")
    masks = _binary(masks)
    o3d = import_open3d()
    scene = raycasting_scene(hull.to_mesh())
    lowest = []
    for mask, cam in zip(masks, np.asarray(c2w, np.float64), strict=True):
        filled = np.flatnonzero(mask.any(axis=1))
        if len(filled) == 0 or filled[-1] >= mask.shape[0] - 1:
            continue
        bottom = np.zeros_like(mask)
        bottom[filled[-1] - rows + 1 : filled[-1] + 1] = True
        pick = np.flatnonzero((mask & bottom).reshape(-1))
        all_origins, all_dirs = pixel_rays(cam[None], intrinsics)
        origins, dirs = all_origins[pick], all_dirs[pick]
        t = scene.cast_rays(o3d.core.Tensor(np.concatenate([origins, dirs], 1)))["t_hit"].numpy()
        hit = np.isfinite(t)
        if hit.any():
            lowest.append(float((origins[hit, 1] + t[hit] * dirs[hit, 1]).min()))
    return float(np.quantile(lowest, quantile)) if lowest else None


def cut_below(hull: HullGrid, height: float) -> HullGrid:
    """The hull without the voxels whose centres lie more than one voxel below `height` (world y)."""
    keep = hull.axes[1] >= height - hull.voxel_size[1]
    return HullGrid(hull.occupancy & keep[None, :, None], hull.axes)
