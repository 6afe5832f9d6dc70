"""Headless CPU rendering of meshes along svd3d orbits, with open3d's RaycastingScene (Embree).

Used for training datasets, evaluation and previews. Everything follows the camera convention of
svd3d/cameras.py: `load_mesh` normalises a file into [-0.5, 0.5]^3 (centred, never reoriented: glTF is already
Y-up), cameras come from `orbit_c2w`, and pixel (u, v) (u right, v down) is the ray through
((u + 0.5 - cx) / fl_x, -(v + 0.5 - cy) / fl_y, -1) in OpenGL camera axes.

Choices, stated once:

- Shading: Lambert + ambient in linear light (sRGB albedo decoded, shaded, averaged, re-encoded). The default
  light is a headlight from the camera's upper left (camera-space direction `HEADLIGHT`), so every view is lit
  from the front and shape reads from the darkening towards the silhouette; a world-space direction gives
  view-consistent shading instead, and ``light=None`` the unlit albedo. Surfaces are two-sided.
- Smooth shading from per-corner normals: faces around a vertex position are averaged when their normals differ
  by less than `CREASE_DEG`, so curved surfaces look round and boxes keep sharp edges.
- Colour: UV texture (trimesh's convention, v = 0 at the image bottom, which trimesh applies to glTF on load;
  REPEAT wrapping, bilinear) times the glTF baseColorFactor; else vertex or face colours (barycentric); else the
  material's diffuse colour; else `DEFAULT_GREY`.
- Antialiasing, adaptive: one ray through every pixel centre, then `supersample` s x s rays in the pixels next to
  an edge (silhouette, occlusion or crease between 4-neighbours), so the cost grows with edges, not with s^2.
  Texture and shading detail inside a surface is not supersampled (textures are filtered bilinearly).
- rgba: RGB composited on white, alpha = coverage (the fraction of a pixel's rays that hit).
- depth: distance along the camera's -Z axis in world units (metres), ``inf`` on the background.
  Depth and normals come from the pixel-centre ray, whatever `supersample` is.
- normals: world-space unit shading normals, turned to face the camera; zero on the background.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from svd3d import outputs
from svd3d.cameras import DEFAULT_FOV_DEG, DEFAULT_RADIUS, CameraFrame, Intrinsics, orbit_c2w, write_transforms
from svd3d.errors import SVD3DError

if TYPE_CHECKING:
    import trimesh

log = logging.getLogger(__name__)

DEFAULT_SIZE = 576
DEFAULT_SUPERSAMPLE = 3  # s x s rays in edge pixels (adaptive, see above): 10 coverage levels, ~1.3x the cost of 1
DEFAULT_GREY = (0.72, 0.72, 0.72)  # sRGB albedo of meshes without colours
HEADLIGHT = (-0.35, 0.45, 1.0)  # camera-space direction towards the light: upper left, in front
AMBIENT = 0.2  # linear-light fraction that reaches surfaces turned away from the light
CREASE_DEG = 60.0  # faces meeting at a sharper angle than this keep a hard edge
EDGE_DEPTH_JUMP = 0.02  # relative depth change between neighbouring pixels that counts as an occlusion edge
MAX_RAYS_PER_CALL = 1 << 20  # rays per RaycastingScene call; keeps temporaries small enough to be reused
MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".off")
FitTo = Literal["cube", "sphere"]
DepthFormat = Literal["none", "png16", "npy"]
Light = Literal["headlight"] | tuple[float, float, float] | None


def _open3d():
    """Import open3d lazily, with an error naming the fix for the usual headless failure."""
    try:
        import open3d
    except (ImportError, OSError) as err:
        if "libusb" in str(err):
            raise SVD3DError(
                f"open3d cannot load libusb ({err}); install it with `apt-get install libusb-1.0-0`"
            ) from None
        raise SVD3DError(f"rendering needs open3d (pip install open3d): {err}") from None
    return open3d


# ------------------------------------------------------------------------------------------------ loading


def load_mesh(path: str | Path, fit: float = 1.0, fit_to: FitTo = "cube", *, normalise: bool = True) -> trimesh.Trimesh:
    """Load a mesh file (GLB / glTF, OBJ + MTL, PLY, STL, OFF) as one trimesh, normalised into the convention.

    Scenes are flattened with their node transforms. The mesh is centred (bounding-box centre at the origin),
    never reoriented, and scaled so that
      fit_to="cube":   its largest extent is `fit` (1.0 fills [-0.5, 0.5]^3, the convention's cube), or
      fit_to="sphere": its farthest vertex is fit / 2 from the origin. At the default radius 2 and 33.8 degree
                       field of view such a mesh covers at most 85% of the frame from every direction
                       (SV3D's preprocessing margin), where a cube-fitted one can leave the frame.
    Vertex colours and UV textures are kept. ``mesh.metadata["svd3d_normalisation"]`` holds {"center", "scale"}:
    normalised = (original - center) * scale. ``normalise=False`` keeps the file's own frame and units.
    """
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise SVD3DError(f"mesh file {path} does not exist")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise SVD3DError(f"cannot load {path}: mesh files must end in {', '.join(MESH_SUFFIXES)}")
    if not 0 < fit <= 1:
        raise SVD3DError(f"fit must be in (0, 1] (a fraction of the cube [-0.5, 0.5]^3), got {fit}")
    if fit_to not in ("cube", "sphere"):
        raise SVD3DError(f"fit_to must be 'cube' or 'sphere', got {fit_to!r}")
    try:
        scene = trimesh.load(path, force="scene")
        if path.suffix.lower() in (".glb", ".gltf"):
            for name, geometry in list(scene.geometry.items()):
                scene.geometry[name] = _gltf_vertex_colors(geometry)
        mesh = scene.to_mesh() if len(scene.geometry) else None
    except Exception as err:  # trimesh raises many types for bad files
        raise SVD3DError(f"cannot read mesh {path}: {type(err).__name__}: {err}") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise SVD3DError(f"{path} holds no triangles (a point cloud or an empty scene); give a triangle mesh")
    if not normalise:
        return mesh
    center = mesh.bounds.mean(axis=0)
    if fit_to == "cube":
        size = float(mesh.extents.max())
    else:
        size = 2.0 * float(np.linalg.norm(mesh.vertices[np.unique(mesh.faces)] - center, axis=1).max())
    if not np.isfinite(size) or size <= 0:
        raise SVD3DError(f"{path} has degenerate bounds {mesh.bounds.tolist()}; nothing to render")
    scale = fit / size
    transform = np.diag([scale, scale, scale, 1.0])
    transform[:3, 3] = -center * scale
    mesh.apply_transform(transform)
    mesh.metadata["svd3d_normalisation"] = {"center": center.tolist(), "scale": scale}
    return mesh


def _gltf_vertex_colors(geometry):
    """A glTF primitive with COLOR_0 and a material without a texture (what exporters, svd3d's included, write for
    vertex-coloured meshes) comes from trimesh as TextureVisuals whose colours sit unused in vertex_attributes;
    flattening the scene would drop them. Give it ColorVisuals instead: COLOR_0 is linear (glTF spec), times the
    material's baseColorFactor, stored as sRGB bytes like every other vertex colour."""
    import trimesh

    visual = getattr(geometry, "visual", None)
    colors = getattr(visual, "vertex_attributes", {}).get("color") if visual is not None else None
    if visual is None or visual.kind != "texture" or colors is None or len(colors) != len(geometry.vertices):
        return geometry
    material = visual.material
    if getattr(material, "baseColorTexture", None) is not None or getattr(material, "image", None) is not None:
        return geometry
    raw = np.asarray(colors)
    linear = raw[:, :3].astype(np.float64) / (255.0 if raw.dtype == np.uint8 else 1.0)
    factor = _rgb(getattr(material, "baseColorFactor", None))
    if factor is not None:
        linear = linear * factor
    alpha = raw[:, 3:4].astype(np.float64) / (255.0 if raw.dtype == np.uint8 else 1.0) if raw.shape[1] > 3 else None
    rgba = np.concatenate(
        [_linear_to_srgb(np.clip(linear, 0, 1)), np.ones((len(raw), 1)) if alpha is None else alpha], 1
    )
    out = geometry.copy()
    out.visual = trimesh.visual.ColorVisuals(out, vertex_colors=np.round(np.clip(rgba, 0, 1) * 255).astype(np.uint8))
    return out


# ------------------------------------------------------------------------------------------------ surface


def _srgb_to_linear(c) -> np.ndarray:
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(c) -> np.ndarray:
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


_DECODE = _srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)  # uint8 sRGB -> linear
_ENCODE = np.round(_linear_to_srgb(np.linspace(0.0, 1.0, 1 << 16)) * 255).astype(np.uint8)  # linear -> uint8


def _encode(linear: np.ndarray) -> np.ndarray:
    """Linear [0, 1] floats -> uint8 sRGB (a 65536-entry table: exact to within rounding)."""
    return _ENCODE[np.round(np.clip(linear, 0.0, 1.0) * 65535).astype(np.int32)]


@dataclass(frozen=True)
class _Surface:
    """What colours a hit point, in linear light: a texture times `constant`, corner colours, or `constant`."""

    constant: np.ndarray  # (3,) float32; multiplies the texture
    face_uv: np.ndarray | None = None  # (F, 3, 2) float32 per-corner uv, trimesh convention (v = 0 at the bottom)
    texture: np.ndarray | None = None  # (H*W, 3) float32 texels, row-major from the image top
    texture_size: tuple[int, int] = (0, 0)  # (H, W)
    corner_colors: np.ndarray | None = None  # (F, 3, 3) float32 per-corner colours (vertex or face colours)


def _rgb(color) -> np.ndarray | None:
    """A trimesh colour (uint8 0..255 or float 0..1, RGB or RGBA) as (3,) float in [0, 1], or None."""
    if color is None:
        return None
    raw = np.asarray(color)
    c = raw.astype(np.float64).reshape(-1)[:3]
    if c.size < 3:
        return None
    return c / 255.0 if raw.dtype == np.uint8 or c.max() > 1.0 else c


def _is_trimesh_placeholder(material, image) -> bool:
    """trimesh gives UVs without a texture (e.g. PLY s/t) a 2x2 grey (100, 100, 100) image: not real colour."""
    from trimesh.visual.material import SimpleMaterial

    arr = np.asarray(image.convert("RGBA"))
    return (
        isinstance(material, SimpleMaterial) and arr.shape[:2] == (2, 2) and bool((arr == (100, 100, 100, 255)).all())
    )


def _surface(mesh) -> _Surface:
    """The colour source of a trimesh. glTF baseColorFactor is linear (glTF spec); textures, vertex / face colours
    and OBJ diffuse colours are sRGB."""
    grey = _srgb_to_linear(DEFAULT_GREY).astype(np.float32)
    faces = np.asarray(mesh.faces)
    visual = mesh.visual
    if visual.kind == "texture":
        from trimesh.visual.material import PBRMaterial

        material = visual.material
        if isinstance(material, PBRMaterial):
            image, factor = material.baseColorTexture, _rgb(material.baseColorFactor)
        else:
            image, factor = getattr(material, "image", None), None
            if image is None and _rgb(getattr(material, "diffuse", None)) is not None:
                factor = _srgb_to_linear(_rgb(material.diffuse))
        factor = None if factor is None else factor.astype(np.float32)
        if image is not None and not _is_trimesh_placeholder(material, image):
            pixels = np.asarray(image.convert("RGB"))
            return _Surface(
                constant=np.ones(3, np.float32) if factor is None else factor,
                face_uv=np.asarray(visual.uv, dtype=np.float32)[faces],
                texture=_DECODE[pixels.reshape(-1, 3)],
                texture_size=pixels.shape[:2],
            )
        return _Surface(constant=grey if factor is None else factor)
    if visual.kind == "vertex":
        return _Surface(constant=grey, corner_colors=_DECODE[np.asarray(visual.vertex_colors)[:, :3]][faces])
    if visual.kind == "face":
        colors = _DECODE[np.asarray(visual.face_colors)[:, :3]]
        return _Surface(constant=grey, corner_colors=np.repeat(colors[:, None], 3, axis=1))
    return _Surface(constant=grey)


def _sample_texture(surface: _Surface, uv: np.ndarray) -> np.ndarray:
    """Bilinear, REPEAT-wrapped lookup: (M, 2) uv (v up) -> (M, 3) float32 linear."""
    h, w = surface.texture_size
    x = np.mod(uv[:, 0], 1.0) * w - 0.5  # texel centres at integer + 0.5
    y = np.mod(1.0 - uv[:, 1], 1.0) * h - 0.5  # v = 0 is the bottom row of the image
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    x0, y0 = x0.astype(np.int64) % w, y0.astype(np.int64) % h
    x1, y1 = (x0 + 1) % w, (y0 + 1) % h
    taps = np.stack([y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1], axis=1)  # (M, 4)
    weights = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], axis=1)  # (M, 4)
    return np.einsum("mk,mkc->mc", weights, surface.texture[taps])


def _interpolate(bary: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """(M, 3) barycentric weights, (M, 3, C) corner values -> (M, C)."""
    return bary[:, 0:1] * corners[:, 0] + bary[:, 1:2] * corners[:, 1] + bary[:, 2:3] * corners[:, 2]


def _albedo(surface: _Surface, face_idx: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """(M,) hit faces, (M, 3) barycentric weights -> (M, 3) float32 linear albedo."""
    if surface.texture is not None:
        return _sample_texture(surface, _interpolate(bary, surface.face_uv[face_idx])) * surface.constant
    if surface.corner_colors is not None:
        return _interpolate(bary, surface.corner_colors[face_idx])
    return np.broadcast_to(surface.constant, (len(face_idx), 3))


def _corner_normals(vertices: np.ndarray, faces: np.ndarray, crease_deg: float = CREASE_DEG):
    """Smooth normals per face corner, hard across creases: ((F, 3) unit face normals, (F, 3, 3) corner normals).

    Each corner averages the (area-weighted) normals of the faces around its vertex *position* (so UV seams,
    where vertices are split, stay smooth) whose normal is within crease_deg of its own face's normal.
    """
    tri = vertices[faces]  # (F, 3, 3)
    raw = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # (F, 3), length = 2 * area
    length = np.linalg.norm(raw, axis=1, keepdims=True)
    unit = np.divide(raw, length, out=np.zeros_like(raw), where=length > 0)
    # merge vertices by position
    span = max(float(np.ptp(vertices, axis=0).max()), 1e-12)
    quantised = np.round((vertices - vertices.min(axis=0)) / span * 2**21).astype(np.int64)
    _, pos = np.unique(quantised, axis=0, return_inverse=True)
    pos = pos.reshape(-1)
    corner_pos = pos[faces].reshape(-1)  # (3F,)
    corner_face = np.repeat(np.arange(len(faces)), 3)
    order = np.argsort(corner_pos, kind="stable")
    counts = np.bincount(corner_pos)
    starts = np.cumsum(counts) - counts
    # every (corner, face around the corner's position) pair
    deg = counts[corner_pos]  # (3F,)
    pair_corner = np.repeat(np.arange(len(corner_pos)), deg)
    offsets = np.arange(len(pair_corner)) - np.repeat(np.cumsum(deg) - deg, deg)
    pair_face = corner_face[order][np.repeat(starts[corner_pos], deg) + offsets]
    own = unit[corner_face[pair_corner]]
    keep = np.einsum("pc,pc->p", own, unit[pair_face]) >= np.cos(np.radians(crease_deg))
    acc = np.stack(
        [np.bincount(pair_corner[keep], raw[pair_face[keep], c], minlength=len(corner_pos)) for c in range(3)], -1
    )
    norm = np.linalg.norm(acc, axis=1, keepdims=True)
    fallback = np.repeat(unit, 3, axis=0)
    corners = np.where(norm > 0, acc / np.maximum(norm, 1e-30), fallback)
    return unit, corners.reshape(-1, 3, 3)


# ------------------------------------------------------------------------------------------------ rendering


@dataclass(frozen=True)
class RenderResult:
    """Rendered views and the cameras that made them (svd3d convention)."""

    rgba: np.ndarray  # (N, H, W, 4) uint8: RGB composited on white, alpha = coverage
    c2w: np.ndarray  # (N, 4, 4) float64 OpenGL camera-to-world
    intrinsics: Intrinsics
    depth: np.ndarray | None = None  # (N, H, W) float32 distance along camera -Z, inf on the background
    normals: np.ndarray | None = None  # (N, H, W, 3) float32 world-space unit normals facing the camera, 0 = none
    elevations: np.ndarray | None = None  # (N,) degrees, when rendered along an orbit
    azimuths: np.ndarray | None = None  # (N,) degrees

    @property
    def masks(self) -> np.ndarray:
        """(N, H, W) bool silhouettes: coverage of at least half a pixel."""
        return self.rgba[..., 3] >= 128


def _camera_grid(intr: Intrinsics, supersample: int) -> tuple[np.ndarray, np.ndarray]:
    """Camera-space ray directions (x, y, -1) of s x s rays per pixel: x (W, s) and y (H, s) float32.

    Pixel (u, v) spans [u, u + 1) x [v, v + 1); its rays pass through u + (i + 0.5) / s (s = 1: the centre).
    """
    sub = (np.arange(supersample) + 0.5) / supersample
    u = np.arange(intr.width)[:, None] + sub[None, :]
    v = np.arange(intr.height)[:, None] + sub[None, :]
    return ((u - intr.cx) / intr.fl_x).astype(np.float32), (-(v - intr.cy) / intr.fl_y).astype(np.float32)


def _pixel_rays(c2w: np.ndarray, grid: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(B, 4, 4), a 1-sample grid -> (B, H*W, 6) float32 rays [origin, direction = x X + y Y - Z], unnormalised
    so that t is the distance along the camera's -Z axis."""
    x, y = grid[0][:, 0], grid[1][:, 0]  # (W,), (H,)
    axes = c2w[:, :3, :3].astype(np.float32)  # columns: camera X, Y, Z in world space
    rays = np.empty((len(c2w), len(y), len(x), 6), dtype=np.float32)
    rays[..., :3] = c2w[:, None, None, :3, 3]
    np.multiply(x[None, None, :, None], axes[:, None, None, :, 0], out=rays[..., 3:])
    rays[..., 3:] += (y[None, :, None] * axes[:, None, :, 1] - axes[:, None, :, 2])[:, :, None, :]
    return rays.reshape(len(c2w), -1, 6)


def _subpixel_rays(c2w: np.ndarray, grid: tuple[np.ndarray, np.ndarray], view: np.ndarray, pixel: np.ndarray):
    """The s x s rays of K chosen pixels: (B, 4, 4), an s-sample grid, (K,) view and pixel (v * W + u) indices
    -> (K, s*s, 6) float32."""
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


def _edge_pixels(hit: np.ndarray, t: np.ndarray, face: np.ndarray, face_normals: np.ndarray) -> np.ndarray:
    """(B, H, W) pixel-centre hits, depths and faces -> (B, H, W) bool: pixels worth supersampling.

    Both pixels of a 4-neighbour pair are marked where one hits and the other misses (silhouettes), where depth
    jumps by more than `EDGE_DEPTH_JUMP` of itself (occlusions) or where the faces meet at a crease.
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


def _light_dirs(light: Light, c2w: np.ndarray) -> np.ndarray | None:
    """(N, 3) float32 world-space unit directions towards the light, per view; None for unlit."""
    if light is None:
        return None
    if isinstance(light, str):
        if light != "headlight":
            raise SVD3DError(f"light must be 'headlight', a world direction (x, y, z) or None, got {light!r}")
        cam = np.asarray(HEADLIGHT, float)
        world = c2w[:, :3, :3] @ (cam / np.linalg.norm(cam))
    else:
        d = np.asarray(light, float).reshape(-1)
        if d.shape != (3,) or not np.isfinite(d).all() or np.linalg.norm(d) == 0:
            raise SVD3DError(f"a light direction must be 3 finite numbers, not all zero, got {light!r}")
        world = np.broadcast_to(d / np.linalg.norm(d), (len(c2w), 3))
    return world.astype(np.float32)


def raycasting_scene(mesh):
    """An open3d (Embree) RaycastingScene holding the mesh's triangles: the one place svd3d builds one."""
    o3d = _open3d()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.asarray(mesh.vertices, np.float32)), o3d.core.Tensor(np.asarray(mesh.faces, np.uint32))
    )
    return scene


class _Prepared:
    """A mesh ready to ray-cast: the Embree scene, normals and colour source, built once per render."""

    def __init__(self, mesh):
        o3d = _open3d()
        vertices = np.asarray(mesh.vertices, dtype=np.float64)
        faces = np.asarray(mesh.faces, dtype=np.int64)
        if len(faces) == 0:
            raise SVD3DError("the mesh has no faces; nothing to render")
        self.scene = raycasting_scene(mesh)
        face_normals, corner_normals = _corner_normals(vertices, faces)
        self.face_normals, self.corner_normals = face_normals.astype(np.float32), corner_normals.astype(np.float32)
        self.surface = _surface(mesh)
        self._tensor = o3d.core.Tensor

    def cast(self, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(..., 6) float32 rays -> t (...) float32 (inf = miss), face ids (...), barycentrics (..., 2) float32."""
        out = self.scene.cast_rays(self._tensor(rays))
        return out["t_hit"].numpy(), out["primitive_ids"].numpy(), out["primitive_uvs"].numpy()

    def shade(self, dirs, face_idx, bary_uv, lights, ambient):
        """M hits -> colour (M, 3) float32 linear and camera-facing unit shading normals (M, 3).
        lights: (M, 3) world directions towards the light, or None for the unlit albedo."""
        bary = np.empty((len(face_idx), 3), dtype=np.float32)  # Embree: p = (1-u-v) v0 + u v1 + v v2
        bary[:, 1:] = bary_uv
        bary[:, 0] = 1.0 - bary_uv[:, 0] - bary_uv[:, 1]
        normal = _interpolate(bary, self.corner_normals[face_idx])
        facing = np.einsum("mc,mc->m", self.face_normals[face_idx], dirs) > 0
        normal[facing] *= -1  # two-sided: a back face seen by the camera is shaded as a front face
        normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
        albedo = _albedo(self.surface, face_idx, bary)
        if lights is None:
            return albedo, normal
        lambert = np.maximum(np.einsum("mc,mc->m", normal, lights), 0.0)
        return albedo * (ambient + (1.0 - ambient) * lambert)[:, None], normal


def _at(lights: np.ndarray | None, view: np.ndarray) -> np.ndarray | None:
    return None if lights is None else lights[view]


def render_cameras(
    mesh,
    c2w: np.ndarray,
    intrinsics: Intrinsics,
    *,
    light: Light = "headlight",
    ambient: float = AMBIENT,
    supersample: int = DEFAULT_SUPERSAMPLE,
    depth: bool = False,
    normals: bool = False,
) -> RenderResult:
    """Render a trimesh from any cameras: (N, 4, 4) OpenGL camera-to-world matrices and one set of intrinsics.

    The mesh is used as given (`load_mesh` normalises a file into the convention). `supersample` s casts s x s
    rays per pixel on edges (silhouettes, occlusions, creases) for antialiased colour and coverage; elsewhere,
    and for depth and normals, one ray through the pixel centre (1: that ray only).
    """
    # 1. check inputs
    c2w = np.asarray(c2w, dtype=np.float64)
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4) or not np.isfinite(c2w).all():
        raise SVD3DError(f"cameras must be (N, 4, 4) finite camera-to-world matrices, got shape {c2w.shape}")
    if isinstance(supersample, bool) or not isinstance(supersample, int | np.integer) or not 1 <= supersample <= 8:
        raise SVD3DError(f"supersample must be an integer from 1 to 8, got {supersample!r}")
    if not 0 <= ambient <= 1:
        raise SVD3DError(f"ambient must be in [0, 1], got {ambient}")
    # 2. prepare the scene, the per-view lights and the outputs
    prep = _Prepared(mesh)
    lights = _light_dirs(light, c2w)
    n, h, w, s = len(c2w), intrinsics.height, intrinsics.width, int(supersample)
    rgba = np.empty((n, h, w, 4), dtype=np.uint8)
    depth_out = np.full((n, h, w), np.inf, dtype=np.float32) if depth else None
    normals_out = np.zeros((n, h, w, 3), dtype=np.float32) if normals else None
    grid_centre = _camera_grid(intrinsics, 1)
    grid_sub = _camera_grid(intrinsics, s)
    batch = max(1, MAX_RAYS_PER_CALL // (h * w))
    for start in range(0, n, batch):
        cams = c2w[start : start + batch]
        b, views = len(cams), slice(start, start + len(cams))
        view_lights = None if lights is None else lights[views]
        # 3. one ray through each pixel centre: colour, depth and normals
        rays = _pixel_rays(cams, grid_centre)  # (b, H*W, 6)
        t, face, bary = prep.cast(rays)  # (b, H*W)
        hit = np.isfinite(t)
        vi, pi = np.nonzero(hit)
        colour, normal = prep.shade(rays[vi, pi, 3:], face[vi, pi], bary[vi, pi], _at(view_lights, vi), ambient)
        if depth:  # camera-space directions have z = -1, so t is the distance along -Z
            depth_out[views] = t.reshape(b, h, w)
        if normals:
            normals_out[views].reshape(b, h * w, 3)[hit] = normal
        # 4. supersample edge pixels (silhouettes, occlusions, creases): s x s rays each, shaded per ray
        refine = np.zeros_like(hit)
        if s > 1:
            refine = _edge_pixels(*(a.reshape(b, h, w) for a in (hit, t, face)), prep.face_normals).reshape(b, -1)
        keep = ~refine[vi, pi]
        vr, pr = np.nonzero(refine)
        k = j = np.zeros(0, dtype=np.int64)
        colour_sub = np.zeros((0, 3), dtype=np.float32)
        if len(vr):
            sub_rays = _subpixel_rays(cams, grid_sub, vr, pr)  # (K, s*s, 6)
            t_sub, face_sub, bary_sub = prep.cast(sub_rays)
            k, j = np.nonzero(np.isfinite(t_sub))
            light_sub = _at(view_lights, vr[k])
            colour_sub, _ = prep.shade(sub_rays[k, j, 3:], face_sub[k, j], bary_sub[k, j], light_sub, ambient)
        # 5. composite on white in linear light: white minus each pixel's mean darkening
        pixel = np.concatenate([vi[keep] * (h * w) + pi[keep], vr[k] * (h * w) + pr[k]])
        weight = np.concatenate([np.ones(keep.sum()), np.full(len(k), 1.0 / (s * s))])
        shaded = np.concatenate([colour[keep], colour_sub])
        cover = np.bincount(pixel, weights=weight, minlength=b * h * w)
        for c in range(3):
            dark = np.bincount(pixel, weights=(1.0 - shaded[:, c]) * weight, minlength=b * h * w)
            rgba[views, ..., c] = _encode(1.0 - dark).reshape(b, h, w)
        rgba[views, ..., 3] = np.round(cover * 255.0).reshape(b, h, w)
    return RenderResult(rgba=rgba, c2w=c2w, intrinsics=intrinsics, depth=depth_out, normals=normals_out)


def render_views(
    mesh,
    elevations,
    azimuths,
    size: int = DEFAULT_SIZE,
    fov_deg: float = DEFAULT_FOV_DEG,
    radius: float = DEFAULT_RADIUS,
    *,
    light: Light = "headlight",
    ambient: float = AMBIENT,
    supersample: int = DEFAULT_SUPERSAMPLE,
    depth: bool = False,
    normals: bool = False,
) -> RenderResult:
    """Render a (normalised) trimesh along an orbit: (N,) elevations and azimuths in degrees -> N square views."""
    elevations = np.atleast_1d(np.asarray(elevations, dtype=np.float64))
    azimuths = np.atleast_1d(np.asarray(azimuths, dtype=np.float64))
    if elevations.shape != azimuths.shape or elevations.ndim != 1:
        raise SVD3DError(f"give one elevation per azimuth, got {elevations.shape} and {azimuths.shape}")
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise SVD3DError(f"size must be a positive number of pixels, got {size!r}")
    if not 0 < fov_deg < 180:
        raise SVD3DError(f"fov_deg must be between 0 and 180 degrees, got {fov_deg}")
    if not radius > math.sqrt(3) / 2:
        raise SVD3DError(f"radius must exceed the cube's half-diagonal 0.866 so cameras sit outside, got {radius}")
    intr = Intrinsics.from_fov(int(size), int(size), fov_deg)
    c2w = orbit_c2w(elevations, azimuths, radius)
    result = render_cameras(
        mesh, c2w, intr, light=light, ambient=ambient, supersample=supersample, depth=depth, normals=normals
    )
    return RenderResult(
        rgba=result.rgba,
        c2w=c2w,
        intrinsics=intr,
        depth=result.depth,
        normals=result.normals,
        elevations=elevations,
        azimuths=azimuths,
    )


def render_silhouettes(mesh, c2w: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """(N, H, W) bool: which pixel-centre rays hit the mesh. Cheaper than `render_cameras` (no shading)."""
    o3d = _open3d()
    c2w = np.asarray(c2w, dtype=np.float64)
    scene = raycasting_scene(mesh)
    grid = _camera_grid(intrinsics, 1)
    out = np.empty((len(c2w), intrinsics.height, intrinsics.width), dtype=bool)
    batch = max(1, MAX_RAYS_PER_CALL // (intrinsics.height * intrinsics.width))
    for start in range(0, len(c2w), batch):
        rays = _pixel_rays(c2w[start : start + batch], grid)
        hit = np.isfinite(scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy())
        out[start : start + batch] = hit.reshape(-1, intrinsics.height, intrinsics.width)
    return out


def frame_safe_fit(radius: float = DEFAULT_RADIUS, fov_deg: float = DEFAULT_FOV_DEG, fit_to: FitTo = "cube") -> float:
    """The largest `load_mesh` fit for which any mesh stays inside every view from any direction (the bounding
    sphere's cone fits the field of view). Defaults: 0.671 for "cube", 1.0 for "sphere" (capped at 1)."""
    max_radius = radius * math.sin(math.radians(fov_deg) / 2)  # of a sphere at the origin that fills the frame
    half = math.sqrt(3) / 2 if fit_to == "cube" else 0.5  # farthest point of a fit-1 mesh from the origin
    return min(1.0, max_radius / half)


# ------------------------------------------------------------------------------------------------ folders


@outputs.holds_output(lambda args: args["out_dir"])
def render_to_folder(
    mesh,
    orbit_angles: tuple[np.ndarray, np.ndarray],
    out_dir: str | Path,
    size: int = DEFAULT_SIZE,
    *,
    fov_deg: float = DEFAULT_FOV_DEG,
    radius: float = DEFAULT_RADIUS,
    fit: float = 1.0,
    fit_to: FitTo = "sphere",
    light: Light = "headlight",
    supersample: int = DEFAULT_SUPERSAMPLE,
    depth: DepthFormat = "none",
    normals: bool = False,
) -> Path:
    """Render a mesh file (or a trimesh, used as given) along an orbit into a nerfstudio folder; returns out_dir.

    A file is normalised by `load_mesh(path, fit, fit_to)`; the default fit_to="sphere" keeps the object inside
    every frame at the default camera (fit_to="cube" follows the cube exactly and can leave the frame).

    Layout (staged, swapped into place when complete; an earlier svd3d output there is replaced, anything else is
    refused, see svd3d.outputs):

        images/000.png ...   RGBA, RGB composited on white, alpha = coverage; 000 = first orbit angle
        depth/000.png ...    depth="png16": 16-bit, millimetres along the camera -Z axis, 0 = background
        depth/000.npy ...    depth="npy": float32 metres along -Z, 0 = background
        normals/000.png ...  normals=True: RGB = (n + 1) / 2 * 255 of world-space unit normals, alpha = hit
        transforms.json      nerfstudio cameras (svd3d.cameras), with each frame's elevation / azimuth and, with
                             depth, its depth_file_path (nerfstudio: depth_unit_scale_factor 1e-3 for png16,
                             1.0 for npy)
    """
    from PIL import Image

    # 1. check inputs
    out_dir = Path(out_dir)
    if depth not in ("none", "png16", "npy"):
        raise SVD3DError(f"depth must be 'none', 'png16' or 'npy', got {depth!r}")
    outputs.check_replaceable(out_dir)
    elevations, azimuths = (np.asarray(a, dtype=np.float64) for a in orbit_angles)
    # 2. load and render
    from_file = isinstance(mesh, str | Path)
    source = str(mesh) if from_file else "<trimesh, used as given>"
    if from_file:
        mesh = load_mesh(mesh, fit=fit, fit_to=fit_to)
    started = time.perf_counter()
    result = render_views(
        mesh,
        elevations,
        azimuths,
        size,
        fov_deg,
        radius,
        light=light,
        supersample=supersample,
        depth=depth != "none",
        normals=normals,
    )
    seconds = time.perf_counter() - started
    log.info("rendered %d views at %dx%d in %.2f s (%d faces)", len(azimuths), size, size, seconds, len(mesh.faces))
    if depth == "png16":
        finite = result.depth[np.isfinite(result.depth)]
        if finite.size and finite.max() * 1000 > 65535:
            raise SVD3DError(f"depth up to {finite.max():.1f} m does not fit 16-bit millimetres; use depth='npy'")
    # 3. write the folder
    with outputs.replacing(out_dir, "render") as tmp:
        frames = []
        (tmp / "images").mkdir()
        for sub in (["depth"] if depth != "none" else []) + (["normals"] if normals else []):
            (tmp / sub).mkdir()
        for i in range(len(azimuths)):
            name = f"{i:03d}"
            Image.fromarray(result.rgba[i], "RGBA").save(tmp / "images" / f"{name}.png")
            if depth != "none":
                d = np.where(np.isfinite(result.depth[i]), result.depth[i], 0.0).astype(np.float32)
                if depth == "png16":
                    Image.fromarray(np.round(d * 1000).astype(np.uint16)).save(tmp / "depth" / f"{name}.png")
                else:
                    np.save(tmp / "depth" / f"{name}.npy", d)
            if normals:
                n = result.normals[i]
                hit = np.any(n != 0, axis=-1)
                encoded = np.concatenate([np.round((n + 1) * 127.5), 255 * hit[..., None]], -1).astype(np.uint8)
                Image.fromarray(np.where(hit[..., None], encoded, 0).astype(np.uint8), "RGBA").save(
                    tmp / "normals" / f"{name}.png"
                )
            frames.append(CameraFrame(f"images/{name}.png", result.c2w[i], elevations[i], azimuths[i]))
        extra = {
            "renderer": {
                "mesh": source,
                "normalisation": mesh.metadata.get("svd3d_normalisation"),
                "fit": float(fit) if from_file else None,
                "fit_to": fit_to if from_file else None,
                "size": int(size),
                "fov_deg": float(fov_deg),
                "radius": float(radius),
                "light": light if light is None or isinstance(light, str) else list(map(float, light)),
                "supersample": int(supersample),
                "depth": depth,
                "normals": bool(normals),
                "seconds": round(seconds, 3),
            }
        }
        if depth != "none":
            suffix = ".png" if depth == "png16" else ".npy"
            frames = [replace(f, extra={"depth_file_path": f"depth/{i:03d}{suffix}"}) for i, f in enumerate(frames)]
        write_transforms(tmp / "transforms.json", frames, result.intrinsics, extra)
    return out_dir
