"""What colours a mesh's surface and which way it faces, as a renderer or a texture bake reads it.

- Colour (`mesh_surface`, `albedo`): UV texture (trimesh's convention, v = 0 at the image bottom, which trimesh
  applies to glTF on load; REPEAT wrapping, bilinear) times the glTF baseColorFactor; else vertex or face colours
  (barycentric); else the material's diffuse colour; else `DEFAULT_GREY`. All in linear light (svd3d.geometry.colour).
- Normals (`corner_normals`): smooth per face corner, faces around a vertex position averaged when their normals
  differ by less than `CREASE_DEG`, so curved surfaces look round and boxes keep sharp edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from svd3d.geometry.colour import SRGB_DECODE, srgb_to_linear, unit_rgb

DEFAULT_GREY = (0.72, 0.72, 0.72)  # sRGB albedo of meshes without colours
CREASE_DEG = 60.0  # faces meeting at a sharper angle than this keep a hard edge


@dataclass(frozen=True)
class Surface:
    """What colours a hit point, in linear light: a texture times `constant`, corner colours, or `constant`."""

    constant: np.ndarray  # (3,) float32; multiplies the texture
    face_uv: np.ndarray | None = None  # (F, 3, 2) float32 per-corner uv, trimesh convention (v = 0 at the bottom)
    texture: np.ndarray | None = None  # (H*W, 3) float32 texels, row-major from the image top
    texture_size: tuple[int, int] = (0, 0)  # (H, W)
    corner_colors: np.ndarray | None = None  # (F, 3, 3) float32 per-corner colours (vertex or face colours)


def _is_trimesh_placeholder(material, image) -> bool:
    """trimesh gives UVs without a texture (e.g. PLY s/t) a 2x2 grey (100, 100, 100) image: not real colour."""
    from trimesh.visual.material import SimpleMaterial

    arr = np.asarray(image.convert("RGBA"))
    return (
        isinstance(material, SimpleMaterial) and arr.shape[:2] == (2, 2) and bool((arr == (100, 100, 100, 255)).all())
    )


def mesh_surface(mesh) -> Surface:
    """The colour source of a trimesh. glTF baseColorFactor is linear (glTF spec); textures, vertex / face colours
    and OBJ diffuse colours are sRGB."""
    grey = srgb_to_linear(DEFAULT_GREY).astype(np.float32)
    faces = np.asarray(mesh.faces)
    visual = mesh.visual
    if visual.kind == "texture":
        from trimesh.visual.material import PBRMaterial

        material = visual.material
        if isinstance(material, PBRMaterial):
            image, factor = material.baseColorTexture, unit_rgb(material.baseColorFactor)
        else:
            image, factor = getattr(material, "image", None), None
            if image is None and unit_rgb(getattr(material, "diffuse", None)) is not None:
                factor = srgb_to_linear(unit_rgb(material.diffuse))
        factor = None if factor is None else factor.astype(np.float32)
        if image is not None and not _is_trimesh_placeholder(material, image):
            pixels = np.asarray(image.convert("RGB"))
            return Surface(
                constant=np.ones(3, np.float32) if factor is None else factor,
                face_uv=np.asarray(visual.uv, dtype=np.float32)[faces],
                texture=SRGB_DECODE[pixels.reshape(-1, 3)],
                texture_size=pixels.shape[:2],
            )
        return Surface(constant=grey if factor is None else factor)
    if visual.kind == "vertex":
        return Surface(constant=grey, corner_colors=SRGB_DECODE[np.asarray(visual.vertex_colors)[:, :3]][faces])
    if visual.kind == "face":
        colors = SRGB_DECODE[np.asarray(visual.face_colors)[:, :3]]
        return Surface(constant=grey, corner_colors=np.repeat(colors[:, None], 3, axis=1))
    return Surface(constant=grey)


def sample_texture(surface: Surface, uv: np.ndarray) -> np.ndarray:
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


def interpolate_corners(bary: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """(M, 3) barycentric weights, (M, 3, C) corner values -> (M, C)."""
    return bary[:, 0:1] * corners[:, 0] + bary[:, 1:2] * corners[:, 1] + bary[:, 2:3] * corners[:, 2]


def albedo(surface: Surface, face_idx: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """(M,) hit faces, (M, 3) barycentric weights -> (M, 3) float32 linear albedo."""
    if surface.texture is not None:
        return sample_texture(surface, interpolate_corners(bary, surface.face_uv[face_idx])) * surface.constant
    if surface.corner_colors is not None:
        return interpolate_corners(bary, surface.corner_colors[face_idx])
    return np.broadcast_to(surface.constant, (len(face_idx), 3))


def corner_normals(vertices: np.ndarray, faces: np.ndarray, crease_deg: float = CREASE_DEG):
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
