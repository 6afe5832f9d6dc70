"""Headless CPU rendering of meshes along svd3d orbits, with open3d's RaycastingScene (Embree).

Used for training datasets, evaluation and previews. Everything follows the camera convention of
svd3d/cameras.py and the geometry of svd3d/geometry/: `load_mesh` normalises a file into [-0.5, 0.5]^3 (centred,
never reoriented: glTF is already Y-up), cameras come from `orbit_c2w`, and pixel (u, v) (u right, v down) is the
ray through ((u + 0.5 - cx) / fl_x, -(v + 0.5 - cy) / fl_y, -1) in OpenGL camera axes (`pixel_grid`).

Choices, stated once:

- Shading: Lambert + ambient in linear light (sRGB albedo decoded, shaded, averaged, re-encoded). The default
  light is a headlight from the camera's upper left (camera-space direction `HEADLIGHT`), so every view is lit
  from the front and shape reads from the darkening towards the silhouette; `HeadLight(direction)` moves that
  camera-fixed light elsewhere, a world-space direction gives view-consistent shading instead, and ``light=None``
  the unlit albedo. Surfaces are two-sided. `intensity` scales the light (not the ambient part); a glossy
  `Material` adds a white Blinn-Phong highlight, intensity x specular x max(0, n.h)^shininess where the surface
  faces the light (h: the half vector between the light and the viewer). The defaults (intensity 1, `MATTE`)
  shade exactly as Lambert + ambient alone.
- Smooth shading from per-corner normals (svd3d.geometry.corner_normals): faces around a vertex position are
  averaged when their normals differ by less than `CREASE_DEG`, so curved surfaces look round and boxes keep
  sharp edges.
- Colour: svd3d.geometry.mesh_surface's (UV texture times the glTF baseColorFactor, else vertex or face colours,
  else the material's diffuse colour, else `DEFAULT_GREY`).
- Antialiasing, adaptive: one ray through every pixel centre, then `supersample` s x s rays in the pixels next to
  an edge (silhouette, occlusion or crease between 4-neighbours: svd3d.geometry.edge_pixels), so the cost grows
  with edges, not with s^2. Texture and shading detail inside a surface is not supersampled (textures are
  filtered bilinearly).
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
from typing import Literal

import numpy as np

from svd3d import defaults, outputs, viewer
from svd3d.cameras import (
    DEFAULT_FOV_DEG,
    DEFAULT_RADIUS,
    CameraFrame,
    Intrinsics,
    grid_rays,
    orbit_c2w,
    pixel_grid,
    subpixel_rays,
    write_transforms,
)
from svd3d.errors import SVD3DError
from svd3d.geometry import (
    FitTo,
    albedo,
    cast_rays,
    corner_normals,
    edge_pixels,
    encode_srgb,
    interpolate_corners,
    load_mesh,
    mesh_surface,
    raycasting_scene,
)

log = logging.getLogger(__name__)

DEFAULT_SIZE = defaults.RENDER_SIZE
DEFAULT_SUPERSAMPLE = defaults.SUPERSAMPLE  # s x s rays in edge pixels (adaptive, see above): 10 coverage levels
HEADLIGHT = (-0.35, 0.45, 1.0)  # camera-space direction towards the light: upper left, in front
AMBIENT = 0.2  # linear-light fraction that reaches surfaces turned away from the light
MAX_RAYS_PER_CALL = 1 << 20  # rays per RaycastingScene call; keeps temporaries small enough to be reused
DepthFormat = Literal["none", "png16", "npy"]


@dataclass(frozen=True)
class HeadLight:
    """A light fixed to the camera: `direction` towards the light in camera axes (+X right, +Y up, +Z towards the
    viewer, OpenGL); the default is the renderer's own headlight."""

    direction: tuple[float, float, float] = HEADLIGHT


@dataclass(frozen=True)
class Material:
    """How a surface reflects besides its colour: `specular` 0 is matte (Lambert only), else the strength of a
    white Blinn-Phong highlight whose sharpness is `shininess`."""

    specular: float = 0.0
    shininess: float = 32.0


MATTE = Material()
Light = Literal["headlight"] | HeadLight | tuple[float, float, float] | None


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


def light_record(light: Light) -> str | list | dict | None:
    """A light as JSON: "headlight", {"head": camera-space direction}, a world direction, or None."""
    if light is None or isinstance(light, str):
        return light
    if isinstance(light, HeadLight):
        return {"head": [float(v) for v in light.direction]}
    return [float(v) for v in light]


def _light_dirs(light: Light, c2w: np.ndarray) -> np.ndarray | None:
    """(N, 3) float32 world-space unit directions towards the light, per view; None for unlit."""
    if light is None:
        return None
    if isinstance(light, str | HeadLight):
        if isinstance(light, str) and light != "headlight":
            raise SVD3DError(f"light must be 'headlight', a world direction (x, y, z) or None, got {light!r}")
        cam = np.asarray(HEADLIGHT if isinstance(light, str) else light.direction, float).reshape(-1)
        if cam.shape != (3,) or not np.isfinite(cam).all() or np.linalg.norm(cam) == 0:
            raise SVD3DError(f"a head light's direction must be 3 finite numbers, not all zero, got {light!r}")
        world = c2w[:, :3, :3] @ (cam / np.linalg.norm(cam))
    else:
        d = np.asarray(light, float).reshape(-1)
        if d.shape != (3,) or not np.isfinite(d).all() or np.linalg.norm(d) == 0:
            raise SVD3DError(f"a light direction must be 3 finite numbers, not all zero, got {light!r}")
        world = np.broadcast_to(d / np.linalg.norm(d), (len(c2w), 3))
    return world.astype(np.float32)


class _Prepared:
    """A mesh ready to ray-cast: the Embree scene, normals and colour source, built once per render."""

    def __init__(self, mesh):
        vertices = np.asarray(mesh.vertices, dtype=np.float64)
        faces = np.asarray(mesh.faces, dtype=np.int64)
        if len(faces) == 0:
            raise SVD3DError("the mesh has no faces; nothing to render")
        self.scene = raycasting_scene(mesh)
        face_normals, corners = corner_normals(vertices, faces)
        self.face_normals, self.corner_normals = face_normals.astype(np.float32), corners.astype(np.float32)
        self.surface = mesh_surface(mesh)

    def cast(self, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(..., 6) float32 rays -> t (...) float32 (inf = miss), face ids (...), barycentrics (..., 2) float32."""
        out = cast_rays(self.scene, rays)
        return out["t_hit"].numpy(), out["primitive_ids"].numpy(), out["primitive_uvs"].numpy()

    def shade(self, dirs, face_idx, bary_uv, lights, ambient, intensity=1.0, material=MATTE):
        """M hits -> colour (M, 3) float32 linear and camera-facing unit shading normals (M, 3).
        dirs: (M, 3) ray directions; lights: (M, 3) world directions towards the light, or None for the unlit
        albedo."""
        bary = np.empty((len(face_idx), 3), dtype=np.float32)  # Embree: p = (1-u-v) v0 + u v1 + v v2
        bary[:, 1:] = bary_uv
        bary[:, 0] = 1.0 - bary_uv[:, 0] - bary_uv[:, 1]
        normal = interpolate_corners(bary, self.corner_normals[face_idx])
        facing = np.einsum("mc,mc->m", self.face_normals[face_idx], dirs) > 0
        normal[facing] *= -1  # two-sided: a back face seen by the camera is shaded as a front face
        normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
        colour = albedo(self.surface, face_idx, bary)
        if lights is None:
            return colour, normal
        cosine = np.einsum("mc,mc->m", normal, lights)
        lambert = np.maximum(cosine, 0.0)
        if intensity != 1.0:
            lambert = lambert * np.float32(intensity)
        shaded = colour * (ambient + (1.0 - ambient) * lambert)[:, None]
        if material.specular > 0:
            viewer_dir = -dirs / np.maximum(np.linalg.norm(dirs, axis=1, keepdims=True), 1e-12)
            half = lights + viewer_dir
            half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-12)
            highlight = np.maximum(np.einsum("mc,mc->m", normal, half), 0.0) ** material.shininess
            shaded = shaded + (intensity * material.specular * highlight * (cosine > 0))[:, None].astype(np.float32)
        return shaded, normal


def _at(lights: np.ndarray | None, view: np.ndarray) -> np.ndarray | None:
    return None if lights is None else lights[view]


def render_cameras(
    mesh,
    c2w: np.ndarray,
    intrinsics: Intrinsics,
    *,
    light: Light = "headlight",
    ambient: float = AMBIENT,
    intensity: float = 1.0,
    material: Material = MATTE,
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
    if not 0 <= intensity <= 4:
        raise SVD3DError(f"light intensity must be in [0, 4], got {intensity}")
    if not (0 <= material.specular <= 1 and 1 <= material.shininess <= 1000):
        raise SVD3DError(f"a material needs specular in [0, 1] and shininess in [1, 1000], got {material}")
    # 2. prepare the scene, the per-view lights and the outputs
    prep = _Prepared(mesh)
    lights = _light_dirs(light, c2w)
    n, h, w, s = len(c2w), intrinsics.height, intrinsics.width, int(supersample)
    rgba = np.empty((n, h, w, 4), dtype=np.uint8)
    depth_out = np.full((n, h, w), np.inf, dtype=np.float32) if depth else None
    normals_out = np.zeros((n, h, w, 3), dtype=np.float32) if normals else None
    grid_centre = pixel_grid(intrinsics, 1)
    grid_sub = pixel_grid(intrinsics, s)
    batch = max(1, MAX_RAYS_PER_CALL // (h * w))
    for start in range(0, n, batch):
        cams = c2w[start : start + batch]
        b, views = len(cams), slice(start, start + len(cams))
        view_lights = None if lights is None else lights[views]
        # 3. one ray through each pixel centre: colour, depth and normals
        rays = grid_rays(cams, grid_centre)  # (b, H*W, 6)
        t, face, bary = prep.cast(rays)  # (b, H*W)
        hit = np.isfinite(t)
        vi, pi = np.nonzero(hit)
        colour, normal = prep.shade(rays[vi, pi, 3:], face[vi, pi], bary[vi, pi], _at(view_lights, vi), ambient,
                                    intensity, material)  # fmt: skip
        if depth:  # camera-space directions have z = -1, so t is the distance along -Z
            depth_out[views] = t.reshape(b, h, w)
        if normals:
            normals_out[views].reshape(b, h * w, 3)[hit] = normal
        # 4. supersample edge pixels (silhouettes, occlusions, creases): s x s rays each, shaded per ray
        refine = np.zeros_like(hit)
        if s > 1:
            refine = edge_pixels(*(a.reshape(b, h, w) for a in (hit, t, face)), prep.face_normals).reshape(b, -1)
        keep = ~refine[vi, pi]
        vr, pr = np.nonzero(refine)
        k = j = np.zeros(0, dtype=np.int64)
        colour_sub = np.zeros((0, 3), dtype=np.float32)
        if len(vr):
            sub_rays = subpixel_rays(cams, grid_sub, vr, pr)  # (K, s*s, 6)
            t_sub, face_sub, bary_sub = prep.cast(sub_rays)
            k, j = np.nonzero(np.isfinite(t_sub))
            light_sub = _at(view_lights, vr[k])
            colour_sub, _ = prep.shade(sub_rays[k, j, 3:], face_sub[k, j], bary_sub[k, j], light_sub, ambient,
                                       intensity, material)  # fmt: skip
        # 5. composite on white in linear light: white minus each pixel's mean darkening
        pixel = np.concatenate([vi[keep] * (h * w) + pi[keep], vr[k] * (h * w) + pr[k]])
        weight = np.concatenate([np.ones(keep.sum()), np.full(len(k), 1.0 / (s * s))])
        shaded = np.concatenate([colour[keep], colour_sub])
        cover = np.bincount(pixel, weights=weight, minlength=b * h * w)
        for c in range(3):
            dark = np.bincount(pixel, weights=(1.0 - shaded[:, c]) * weight, minlength=b * h * w)
            rgba[views, ..., c] = encode_srgb(1.0 - dark).reshape(b, h, w)
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
    intensity: float = 1.0,
    material: Material = MATTE,
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
        mesh,
        c2w,
        intr,
        light=light,
        ambient=ambient,
        intensity=intensity,
        material=material,
        supersample=supersample,
        depth=depth,
        normals=normals,
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
    c2w = np.asarray(c2w, dtype=np.float64)
    scene = raycasting_scene(mesh)
    grid = pixel_grid(intrinsics, 1)
    out = np.empty((len(c2w), intrinsics.height, intrinsics.width), dtype=bool)
    batch = max(1, MAX_RAYS_PER_CALL // (intrinsics.height * intrinsics.width))
    for start in range(0, len(c2w), batch):
        rays = grid_rays(c2w[start : start + batch], grid)
        hit = np.isfinite(cast_rays(scene, rays)["t_hit"].numpy())
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
    index: bool = False,
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
        index.html           index=True: the views and the mesh as rendered (svd3d.viewer), for `svd3d render`
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
                "light": light_record(light),
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
        if index:  # the mesh as rendered (normalised), embedded: the source may lie anywhere, in any format
            viewer.write_index(tmp, model=mesh.export(file_type="glb"), title=out_dir.name,
                               model_note=f"the mesh as rendered here (normalised), from {source}")  # fmt: skip
    return out_dir
