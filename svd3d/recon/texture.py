"""UV unwrapping (xatlas) and colour baking from posed views into a texture atlas or into vertex colours.

Conventions (svd3d/cameras.py's and svd3d/geometry/'s, reused):
- UVs follow trimesh: v = 0 at the bottom row of the image. Texel (column x, row y) of an S x S texture has its
  centre at uv ((x + 0.5) / S, 1 - (y + 0.5) / S).
- A world point at camera-space (x, y, z), z < 0, lands at pixel coordinates (cx + fl_x x / -z, cy - fl_y y / -z);
  pixel (u, v) covers [u, u + 1) x [v, v + 1), so its centre is at u + 0.5.

Baking, per surface sample (a texel's or a vertex's 3D point, with a crease-aware smooth normal), per view:
1. the view faces the point (n.v > 0) and the point projects inside the frame, inside the view's silhouette;
2. a ray from the camera reaches the point unobstructed (open3d RaycastingScene, `VISIBILITY_TOLERANCE`);
3. its colour is a bilinear lookup that uses only the view pixels showing the same surface: pixels where the
   mesh itself has a silhouette, an occlusion edge or a crease in that view (they mix two surfaces), or whose
   depth differs from the point's, are left out of the footprint;
4. weight = max(0, n.v)^2 x the view's weight (the input view highest) x the usable footprint fraction x a trust
   that is 0 within `EDGE_EXCLUDE_PX` of the view's background (antialiased rims mixed with white) and ramps
   to 1 over the next `EDGE_RAMP_PX` pixels.
Colours are blended in linear light (sRGB decoded, averaged, re-encoded: svd3d.geometry.colour), as svd3d.render
shades. Samples with little total weight (unseen, or seen only at grazing angles) lean on their nearest well-seen
neighbours in 3D (position and normal, so colours do not cross creases). In a texture, the gutters around charts
are filled with the nearest chart texel up to `padding` texels out and with the mean colour beyond: bilinear
filtering and mipmaps never fetch white.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING

import numpy as np

from svd3d import signals
from svd3d.cameras import grid_rays, pixel_grid
from svd3d.errors import SVD3DError
from svd3d.geometry import (
    SRGB_DECODE,
    corner_normals,
    edge_pixels,
    encode_srgb,
    import_open3d,
    raycasting_scene,
)

if TYPE_CHECKING:
    import trimesh
    from PIL import Image

    from svd3d.recon.views import ViewSet

log = logging.getLogger(__name__)

DEFAULT_TEXTURE_SIZE = 1024
TEXELS_PER_VIEW_PIXEL = 8  # auto texture side, in view pixels: the views' object pixels fill such an atlas several
# times over (an atlas packs charts at well under full use, and a view shows up to half the surface)
CHART_PADDING = 2  # texels of gutter xatlas keeps around every chart (so >= 2 x this between two charts)
FILL_PADDING = 4  # texels of gutter the bake fills with the nearest chart texel (covers the gaps between charts)
EXTRAPOLATE_TEXELS = 1.5  # texels just outside a chart that are coloured from the surface (bilinear footprint)
EDGE_EXCLUDE_PX = 1.5  # view pixels this close to the background are not used: antialiased rims and the
# bilinear footprint mix the object's colour with the white background
EDGE_RAMP_PX = 3.0  # over the next pixels inwards the trust ramps from 0 to 1
ANGLE_POWER = 2  # weight = max(0, n.v) ** ANGLE_POWER
SAME_SURFACE_DEPTH = 0.02  # a view pixel shows a sample's surface when their depths differ by < 2%
VISIBILITY_TOLERANCE = 2e-3  # metres: an occluder must be at least this far in front of a point to hide it
ROUGHNESS = 1.0  # lighting is baked into the albedo; a rough non-metal adds no highlight on top (glTF PBR)
CONFIDENT_WEIGHT = 0.1  # total weight (one frontal generated view: 1) below which a sample leans on its neighbours
FILL_NEIGHBOURS = 8  # confident samples (nearest in 3D) that colour an unseen or weakly seen one
FILL_NORMAL_SCALE = 0.1  # metres per unit of normal difference when looking for neighbours to fill from
FILL_SOURCES = 1 << 15  # at most this many confident samples (evenly strided) serve as neighbours
VERTEX_SAMPLE_INSET = 0.2  # vertex bake: samples this far from a corner towards its opposite edge (barycentric)
MAX_CANDIDATES = 1 << 22  # texel-triangle pairs per rasterisation chunk: bounds temporary memory


# ------------------------------------------------------------------------------------------------ unwrap


def _check_size(size, padding) -> None:
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or not 16 <= size <= 16384:
        raise SVD3DError(f"texture size must be an integer from 16 to 16384 pixels (--texture-size), got {size!r}")
    if isinstance(padding, bool) or not isinstance(padding, int | np.integer) or not 0 <= padding <= size // 8:
        raise SVD3DError(f"padding must be an integer from 0 to {size // 8} texels, got {padding!r}")


def texture_for_views(size: int) -> int:
    """The texture side `--texture auto` picks for views of `size` px (longer side): the power of two that holds
    TEXELS_PER_VIEW_PIXEL texels per view pixel, at most DEFAULT_TEXTURE_SIZE. 64 px views get 512, views from
    128 px up get 1024: a larger atlas for small views only costs time (the unwrap packs it, the bake fills it)."""
    side = 1 << max(6, math.ceil(math.log2(max(int(size), 1) * TEXELS_PER_VIEW_PIXEL)))
    return min(DEFAULT_TEXTURE_SIZE, side)


def unwrap(mesh: trimesh.Trimesh, *, size: int = DEFAULT_TEXTURE_SIZE, padding: int = CHART_PADDING) -> trimesh.Trimesh:
    """UV-unwrap with xatlas into one size x size atlas, each chart with `padding` texels of gutter around it
    (and one more for bilinear filtering), so two charts are at least about 2 x padding + 2 texels apart.

    Vertices are split along chart seams (``mesh.metadata["svd3d_uv"]["vmapping"]``: (V',) index of each new
    vertex's source vertex). Colours are not carried over: bake them (`bake_texture`) from views. Decimate before
    unwrapping; simplification drops UVs.
    """
    trimesh = signals.import_whole("trimesh")

    xatlas = signals.import_whole("xatlas")  # native: not to be interrupted while it initialises

    # 1. check inputs
    _check_size(size, padding)
    if len(mesh.faces) == 0:
        raise SVD3DError("the mesh has no faces; nothing to unwrap")
    # 2. charts and packing: xatlas estimates texels per unit for `resolution`; the atlas it packs may come out
    # a little larger than asked, and UVs are normalised by its real size, so each chart's gutter is a little
    # under `padding` texels in the final texture (reported in metadata)
    started = time.perf_counter()
    atlas = xatlas.Atlas()
    atlas.add_mesh(np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.uint32))
    pack = xatlas.PackOptions()
    pack.resolution = int(size)
    pack.padding = int(padding)
    pack.bilinear = True
    atlas.generate(xatlas.ChartOptions(), pack)
    if atlas.atlas_count != 1:
        raise SVD3DError(f"xatlas packed the charts into {atlas.atlas_count} atlases, expected 1; try a larger size")
    vmapping, indices, uvs = atlas[0]  # (V',), (F, 3), (V', 2) in [0, 1], v along image rows (top = 0)
    # 3. the unwrapped mesh: trimesh UVs have v = 0 at the image bottom
    uv = np.column_stack([uvs[:, 0], 1.0 - uvs[:, 1]]).astype(np.float64)
    out = trimesh.Trimesh(
        np.asarray(mesh.vertices)[vmapping],
        np.asarray(indices, np.int64),
        visual=trimesh.visual.TextureVisuals(uv=uv),
        process=False,
    )
    margin = float(padding) * size / max(atlas.width, atlas.height)
    out.metadata["svd3d_uv"] = {
        "size": int(size),
        "padding": int(padding),
        "chart_margin_texels": round(margin, 2),
        "charts": int(atlas.chart_count),
        "utilization": round(float(atlas.utilization), 4),
        "vmapping": np.asarray(vmapping, np.int64),
    }
    log.info(
        "unwrap: %d charts, %.0f%% of the atlas used, %.1f texel margins, %.2f s",
        atlas.chart_count,
        100 * atlas.utilization,
        margin,
        time.perf_counter() - started,
    )
    return out


# ------------------------------------------------------------------------------------------------ rasterise


def _border_faces(face_uv: np.ndarray) -> np.ndarray:
    """(F, 3, 2) per-corner uv -> (F,) bool: faces with an edge on a chart border (no other face shares it)."""
    key = np.round(face_uv * (1 << 20)).astype(np.int64)  # (F, 3, 2) quantised corners
    a, b = key, np.roll(key, -1, axis=1)  # edge k runs from corner k to corner k + 1
    first = (a[..., 0] < b[..., 0]) | ((a[..., 0] == b[..., 0]) & (a[..., 1] <= b[..., 1]))  # (F, 3)
    lo, hi = np.where(first[..., None], a, b), np.where(first[..., None], b, a)
    edges = np.concatenate([lo, hi], axis=-1).reshape(-1, 4)  # (3F, 4) direction-free
    _, inverse, counts = np.unique(edges, axis=0, return_inverse=True, return_counts=True)
    return (counts[inverse.reshape(-1)] == 1).reshape(-1, 3).any(axis=1)


def rasterize_uv(face_uv: np.ndarray, size: int, margin: float = EXTRAPOLATE_TEXELS):
    """Which surface point each texel shows: (F, 3, 2) per-corner uv (trimesh convention) -> for every texel
    whose centre lies inside a triangle, or within `margin` texels outside a chart's border:
    texel (T,) flat index row * size + column, face (T,) int64, bary (T, 3) float64 barycentrics (clamped onto
    the triangle for texels outside it), inside (T,) bool. A texel inside several triangles (on a shared edge)
    takes any of them; one outside takes the nearest border triangle."""
    px = np.empty_like(face_uv, dtype=np.float64)  # texel-centre coordinates: centre of texel i at i
    px[..., 0] = face_uv[..., 0] * size - 0.5
    px[..., 1] = (1.0 - face_uv[..., 1]) * size - 0.5
    x0, y0, x1, y1, x2, y2 = (px[:, k, c] for k in range(3) for c in range(2))
    denom = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)  # twice the signed area
    ok = np.abs(denom) > 1e-12  # triangles with no area in UV cover no texel
    reach = np.where(_border_faces(face_uv), margin, 0.0)  # (F,) only border faces reach outside themselves
    lo = np.clip(np.floor(px.min(axis=1) - reach[:, None]), 0, size - 1).astype(np.int64)  # (F, 2)
    hi = np.clip(np.ceil(px.max(axis=1) + reach[:, None]), 0, size - 1).astype(np.int64)
    count = np.where(ok, (hi[:, 0] - lo[:, 0] + 1) * (hi[:, 1] - lo[:, 1] + 1), 0)
    edge_len = np.stack([np.hypot(x1 - x2, y1 - y2), np.hypot(x2 - x0, y2 - y0), np.hypot(x0 - x1, y0 - y1)], 1)
    altitude = np.abs(denom)[:, None] / np.maximum(edge_len, 1e-12)  # (F, 3) distance of corner k to its edge
    texels, faces, barys, depths = [], [], [], []
    cum = np.cumsum(count)
    start = 0
    while start < len(count):  # chunks of faces with at most MAX_CANDIDATES pairs (or one big face)
        before = cum[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(cum, before + MAX_CANDIDATES, side="right")))
        chunk = np.arange(start, stop)
        start = stop
        n = count[chunk]
        if n.sum() == 0:
            continue
        f = np.repeat(chunk, n)  # (M,) candidate pairs
        offset = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        width = hi[f, 0] - lo[f, 0] + 1
        x = lo[f, 0] + offset % width
        y = lo[f, 1] + offset // width
        l0 = ((y1[f] - y2[f]) * (x - x2[f]) + (x2[f] - x1[f]) * (y - y2[f])) / denom[f]
        l1 = ((y2[f] - y0[f]) * (x - x2[f]) + (x0[f] - x2[f]) * (y - y2[f])) / denom[f]
        bary = np.stack([l0, l1, 1.0 - l0 - l1], axis=1)  # (M, 3)
        depth = (-bary * altitude[f]).max(axis=1)  # texels outside the nearest edge; <= 0 inside
        keep = depth <= np.maximum(reach[f], 1e-9)
        texels.append((y * size + x)[keep])
        faces.append(f[keep])
        barys.append(bary[keep])
        depths.append(depth[keep])
    if not texels:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros((0, 3)), np.zeros(0, bool)
    texel, face, bary, depth = (np.concatenate(a) for a in (texels, faces, barys, depths))
    # one candidate per texel: any triangle it lies in, else the nearest border triangle
    inside = depth <= 1e-9
    _, first_inside = np.unique(texel[inside], return_index=True)
    pick_inside = np.flatnonzero(inside)[first_inside]
    covered = np.zeros(size * size, bool)
    covered[texel[pick_inside]] = True
    band = np.flatnonzero(~inside & ~covered[texel])
    order = band[np.lexsort((depth[band], texel[band]))]
    first = np.ones(len(order), bool)
    first[1:] = texel[order][1:] != texel[order][:-1]
    pick = np.concatenate([pick_inside, order[first]])
    texel, face, bary = texel[pick], face[pick], bary[pick]
    bary = np.clip(bary, 0.0, None)
    bary /= bary.sum(axis=1, keepdims=True)
    return texel, face, bary, np.arange(len(pick)) < len(pick_inside)


# ------------------------------------------------------------------------------------------------ gather


def _view_images(views: ViewSet, index: int) -> tuple[np.ndarray, np.ndarray]:
    """View `index` as (H*W, 3) float32 linear colours and (H, W) float32 trust (silhouette-edge ramp)."""
    from scipy.ndimage import distance_transform_edt

    srgb = np.round(np.clip(views.images[index], 0.0, 1.0) * 255).astype(np.uint8)
    linear = SRGB_DECODE[srgb.reshape(-1, 3)]
    inside = views.masks[index] > 0.5
    ramp = np.clip((distance_transform_edt(inside) - EDGE_EXCLUDE_PX) / EDGE_RAMP_PX, 0.0, 1.0)
    return linear, ramp.astype(np.float32)


def _surface_pixels(scene, cam: np.ndarray, intr, face_normals: np.ndarray, region: np.ndarray):
    """What the mesh itself shows in a view: ((H*W,) float32 depth along -Z, inf = background, (H*W,) bool
    usable), usable where the pixel-centre ray hits and no 4-neighbour lies across a silhouette, an occlusion edge
    or a crease (svd3d.geometry.edge_pixels): there a view pixel mixes two surfaces (antialiasing, blur).
    Only the bounding box of `region` ((H, W) bool, where samples can land) is cast, 2 pixels wider."""
    o3d = import_open3d()
    h, w = intr.height, intr.width
    depth = np.full((h, w), np.inf, np.float32)
    usable = np.zeros((h, w), bool)
    rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    if len(rows):
        r0, r1 = max(rows[0] - 2, 0), min(rows[-1] + 3, h)
        c0, c1 = max(cols[0] - 2, 0), min(cols[-1] + 3, w)
        gx, gy = pixel_grid(intr, 1)
        rays = grid_rays(cam[None].astype(np.float64), (gx[c0:c1], gy[r0:r1]))  # (1, h'*w', 6)
        out = scene.cast_rays(o3d.core.Tensor(rays))
        shape = (1, r1 - r0, c1 - c0)
        t = out["t_hit"].numpy().reshape(shape)  # directions have camera z = -1: t is the depth
        face = out["primitive_ids"].numpy().astype(np.int64).reshape(shape)
        hit = np.isfinite(t)
        edge = edge_pixels(hit, t, face, face_normals)
        depth[r0:r1, c0:c1] = t[0]
        usable[r0:r1, c0:c1] = (hit & ~edge)[0]
    return depth.reshape(-1), usable.reshape(-1)


def _masked_bilinear(image: np.ndarray, usable: np.ndarray, surface_depth: np.ndarray, intr, u, v, depth):
    """Bilinear lookup that skips taps showing another surface: (H*W, C) image, (H*W,) bool usable pixels and
    (H*W,) surface depth; (K,) pixel coordinates (pixel i's centre at i + 0.5) and depths of the samples ->
    ((K, C) colour, (K,) fraction of the bilinear footprint that was usable)."""
    w, h = intr.width, intr.height
    x, y = u - 0.5, v - 0.5
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    colour = np.zeros((len(u), image.shape[1]), np.float64)
    cover = np.zeros(len(u), np.float64)
    for dx, dy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        tap = np.clip(y0 + dy, 0, h - 1) * w + np.clip(x0 + dx, 0, w - 1)
        good = usable[tap] & (np.abs(surface_depth[tap] - depth) <= SAME_SURFACE_DEPTH * depth)
        weight = np.where(good, weight, 0.0)
        colour += weight[:, None] * image[tap]
        cover += weight
    return colour / np.maximum(cover, 1e-12)[:, None], cover


def _gather(mesh, points: np.ndarray, normals: np.ndarray, views: ViewSet) -> tuple[np.ndarray, np.ndarray]:
    """Weighted colour sums over the views: (M, 3) points and unit normals -> ((M, 3) sum of w * linear colour,
    (M,) sum of w). See the module docstring for the weight."""
    o3d = import_open3d()
    scene = raycasting_scene(mesh)
    face_normals = np.asarray(mesh.face_normals, np.float32)
    intr = views.intrinsics
    points = np.asarray(points, np.float32)
    normals = np.asarray(normals, np.float32)
    color_sum = np.zeros((len(points), 3), np.float64)
    weight_sum = np.zeros(len(points), np.float64)
    n_dot_p = np.einsum("mc,mc->m", normals, points)  # per view, n.(c - p) from one mat-vec
    for i in range(len(views)):
        cam = views.c2w[i].astype(np.float32)
        centre = cam[:3, 3]
        # 1. facing the camera
        facing = normals @ centre - n_dot_p  # (M,) n.(c - p)
        idx = np.flatnonzero(facing > 0)
        rel = points[idx] - centre  # (K, 3) from the camera to the points
        # camera-space coordinates as three mat-vecs ((K, 3) @ (3, 3) takes numpy's slow path)
        x, y, z = rel @ cam[:3, 0], rel @ cam[:3, 1], rel @ cam[:3, 2]
        dist = np.sqrt(x * x + y * y + z * z)
        cos = facing[idx] / np.maximum(dist, 1e-12)
        depth = -z
        # 2. inside the frame and inside the view's silhouette, away from its edge
        ok = (cos > 1e-3) & (depth > 1e-6)
        idx, rel, dist, cos, x, y, depth = idx[ok], rel[ok], dist[ok], cos[ok], x[ok], y[ok], depth[ok]
        u = intr.cx + intr.fl_x * x / depth
        v = intr.cy - intr.fl_y * y / depth
        ok = (u >= 0) & (u < intr.width) & (v >= 0) & (v < intr.height)
        idx, rel, dist, cos, u, v, depth = idx[ok], rel[ok], dist[ok], cos[ok], u[ok], v[ok], depth[ok]
        linear, trust = _view_images(views, i)
        t = trust[v.astype(np.int64), u.astype(np.int64)]
        ok = t > 0
        idx, rel, dist, cos, u, v, depth, t = idx[ok], rel[ok], dist[ok], cos[ok], u[ok], v[ok], depth[ok], t[ok]
        if len(idx) == 0:
            continue
        # 3. unoccluded: the ray from the camera first hits the surface at the point itself
        direction = rel / dist[:, None]
        rays = np.concatenate([np.broadcast_to(centre, (len(idx), 3)), direction], axis=1).astype(np.float32)
        t_hit = scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy()
        ok = t_hit >= dist - VISIBILITY_TOLERANCE
        idx, cos, u, v, depth, t = idx[ok], cos[ok], u[ok], v[ok], depth[ok], t[ok]
        # 4. the colour, from view pixels that show this surface only (not across an edge of the mesh)
        surface_depth, usable = _surface_pixels(scene, cam, intr, face_normals, trust > 0)
        colour, cover = _masked_bilinear(linear, usable, surface_depth, intr, u, v, depth)
        ok = cover > 0
        idx, cos, colour, t = idx[ok], cos[ok], colour[ok], (t * cover)[ok]
        # 5. accumulate
        w = cos.astype(np.float64) ** ANGLE_POWER * float(views.weights[i]) * t
        color_sum[idx] += w[:, None] * colour
        weight_sum[idx] += w
    return color_sum, weight_sum


def _resolve(points: np.ndarray, normals: np.ndarray, color_sum: np.ndarray, weight_sum: np.ndarray) -> np.ndarray:
    """Blended (M, 3) linear colours.

    Samples with a total weight below `CONFIDENT_WEIGHT` (seen by no view, or only at grazing angles or next to
    an edge, where view pixels mix surfaces) lean on a prior: the inverse-distance mean of their
    `FILL_NEIGHBOURS` nearest confident samples (of at most `FILL_SOURCES`), with weight `CONFIDENT_WEIGHT`.
    Nearness is measured on (point, FILL_NORMAL_SCALE x normal), so colours do not leak across a crease.
    """
    from scipy.spatial import cKDTree

    confident = weight_sum >= CONFIDENT_WEIGHT
    if not confident.any():  # e.g. a low-poly mesh whose vertices all sit on creases: take what there is
        confident = weight_sum > 0
    if not confident.any():
        raise SVD3DError(
            "no view sees any part of the mesh: the mesh and the views must share svd3d's frame "
            "(object in [-0.5, 0.5]^3, cameras looking at it)"
        )
    colors = np.zeros_like(color_sum)
    colors[confident] = color_sum[confident] / weight_sum[confident, None]
    if not confident.all():
        features = np.concatenate([points, FILL_NORMAL_SCALE * np.asarray(normals)], axis=1)  # (M, 6)
        source = np.flatnonzero(confident)
        source = source[:: max(1, len(source) // FILL_SOURCES)]  # a prior needs no more detail than this
        k = min(FILL_NEIGHBOURS, len(source))
        weak = ~confident
        distance, nearest = cKDTree(features[source]).query(features[weak], k=k, workers=-1)
        distance, nearest = distance.reshape(len(nearest), k), nearest.reshape(len(nearest), k)
        idw = 1.0 / np.maximum(distance, 1e-6)
        prior = np.einsum("mk,mkc->mc", idw, colors[source][nearest]) / idw.sum(axis=1, keepdims=True)
        colors[weak] = (color_sum[weak] + CONFIDENT_WEIGHT * prior) / (weight_sum[weak, None] + CONFIDENT_WEIGHT)
    return colors


def _smooth_normals(mesh, face: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """Crease-aware smooth normals (svd3d.geometry.corner_normals) at (M,) faces and (M, 3) barycentrics ->
    (M, 3) unit."""
    _, corners = corner_normals(np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64))
    n = np.einsum("mk,mkc->mc", bary, corners[face])
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


# ------------------------------------------------------------------------------------------------ bake


def bake_texture(
    mesh_uv: trimesh.Trimesh, views: ViewSet, size: int = DEFAULT_TEXTURE_SIZE, padding: int = FILL_PADDING
) -> Image.Image:
    """Bake the views' colours into a size x size RGB texture for `mesh_uv`'s UVs (from `unwrap`).

    Gutters: texels within `padding` of a chart take the nearest chart texel's colour, the rest the mean colour.
    """
    from scipy.ndimage import distance_transform_edt

    # 1. check inputs
    _check_size(size, padding)
    uv = getattr(mesh_uv.visual, "uv", None)
    if uv is None or len(uv) != len(mesh_uv.vertices):
        raise SVD3DError("the mesh has no UVs to bake into; unwrap it first (svd3d.recon.texture.unwrap)")
    started = time.perf_counter()
    # 2. the surface point and normal each texel shows
    faces = np.asarray(mesh_uv.faces, np.int64)
    texel, face, bary, _ = rasterize_uv(np.asarray(uv, np.float64)[faces], size)
    if len(texel) == 0:
        raise SVD3DError("the mesh's UVs cover no texel; unwrap it again (svd3d.recon.texture.unwrap)")
    corners = np.asarray(mesh_uv.vertices, np.float64)[faces]  # (F, 3, 3)
    points = np.einsum("mk,mkc->mc", bary, corners[face])
    normals = _smooth_normals(mesh_uv, face, bary)
    # 3. colours from the views, blended in linear light; unseen texels from their nearest seen neighbour
    color_sum, weight_sum = _gather(mesh_uv, points, normals, views)
    colors = _resolve(points, normals, color_sum, weight_sum)
    # 4. the atlas: charts, then gutters (nearest chart texel within `padding`, mean colour beyond)
    atlas = np.empty((size * size, 3), np.float64)
    atlas[:] = colors.mean(axis=0)
    atlas[texel] = colors
    covered = np.zeros(size * size, bool)
    covered[texel] = True
    if padding > 0:
        distance, (iy, ix) = distance_transform_edt(~covered.reshape(size, size), return_indices=True)
        fill = (~covered) & (distance.reshape(-1) <= padding)
        atlas[fill] = atlas[(iy * size + ix).reshape(-1)[fill]]
    log.info(
        "bake: %d texels from %d views (%.1f%% seen weakly or not at all), %.2f s",
        len(texel),
        len(views),
        100 * float((weight_sum < CONFIDENT_WEIGHT).mean()),
        time.perf_counter() - started,
    )
    from PIL import Image

    return Image.fromarray(encode_srgb(atlas).reshape(size, size, 3), "RGB")


def apply_texture(mesh_uv: trimesh.Trimesh, image: Image.Image) -> trimesh.Trimesh:
    """A copy of `mesh_uv` whose material is glTF PBR: the texture as base colour, metallic 0, rough."""
    trimesh = signals.import_whole("trimesh")

    material = trimesh.visual.material.PBRMaterial(
        name="svd3d_baked",
        baseColorTexture=image,
        metallicFactor=0.0,
        roughnessFactor=ROUGHNESS,
    )
    out = mesh_uv.copy()
    out.visual = trimesh.visual.TextureVisuals(uv=np.asarray(mesh_uv.visual.uv), material=material)
    return out


def bake_vertex_colors(mesh: trimesh.Trimesh, views: ViewSet) -> trimesh.Trimesh:
    """A copy of `mesh` with vertex colours baked from the views (for meshes exported without UVs).

    Each vertex averages samples taken just inside its faces (`VERTEX_SAMPLE_INSET` of the way to the opposite
    edge), not at the vertex itself: a vertex often sits on a crease, where view pixels mix two surfaces.
    """
    if len(mesh.faces) == 0:
        raise SVD3DError("the mesh has no faces; nothing to bake")
    started = time.perf_counter()
    out = mesh.copy()
    if out.visual.kind == "texture":
        out.visual = out.visual.to_color()
    faces = np.asarray(out.faces, np.int64)
    # 1. one sample per face corner, moved a little into the face
    inset = VERTEX_SAMPLE_INSET
    bary = np.full((3, 3), inset / 2) + np.eye(3) * (1 - 1.5 * inset)  # row k: corner k, weights summing to 1
    face = np.repeat(np.arange(len(faces)), 3)  # (3F,)
    corner_bary = np.tile(bary, (len(faces), 1))  # (3F, 3)
    points = np.einsum("mk,mkc->mc", corner_bary, np.asarray(out.vertices, np.float64)[faces][face])
    color_sum, weight_sum = _gather(out, points, _smooth_normals(out, face, corner_bary), views)
    # 2. per vertex: the sum over its corners, then blended and filled like texels
    vertex = faces.reshape(-1)
    n = len(out.vertices)
    color_sum = np.stack([np.bincount(vertex, color_sum[:, c], n) for c in range(3)], axis=1)
    weight_sum = np.bincount(vertex, weight_sum, n)
    colors = _resolve(np.asarray(out.vertices, np.float64), smooth_vertex_normals(out), color_sum, weight_sum)
    rgba = np.concatenate([encode_srgb(colors), np.full((len(colors), 1), 255, np.uint8)], axis=1)
    out.visual.vertex_colors = rgba
    log.info("bake: %d vertex colours from %d views, %.2f s", n, len(views), time.perf_counter() - started)
    return out


def smooth_vertex_normals(mesh: trimesh.Trimesh) -> np.ndarray:
    """(V, 3) unit vertex normals that agree across UV seams: the mean of the vertex's crease-aware corner
    normals (svd3d.geometry.corner_normals: faces around the same *position* within CREASE_DEG are averaged)."""
    faces = np.asarray(mesh.faces, np.int64)
    _, corners = corner_normals(np.asarray(mesh.vertices, np.float64), faces)  # (F, 3, 3)
    flat = faces.reshape(-1)
    n = np.stack([np.bincount(flat, corners[..., c].reshape(-1), len(mesh.vertices)) for c in range(3)], -1)
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return np.where(length > 0, n / np.maximum(length, 1e-12), (0.0, 1.0, 0.0))
