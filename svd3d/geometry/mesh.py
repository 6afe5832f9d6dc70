"""Mesh files -> one trimesh in svd3d's world (svd3d/cameras.py): object centred, inside [-0.5, 0.5]^3, never
reoriented (glTF is already Y-up)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from svd3d import signals
from svd3d.errors import SVD3DError
from svd3d.geometry.colour import linear_to_srgb, unit_rgb

if TYPE_CHECKING:
    import trimesh

MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".off")
FitTo = Literal["cube", "sphere"]


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
    trimesh = signals.import_whole("trimesh")

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
    trimesh = signals.import_whole("trimesh")

    visual = getattr(geometry, "visual", None)
    colors = getattr(visual, "vertex_attributes", {}).get("color") if visual is not None else None
    if visual is None or visual.kind != "texture" or colors is None or len(colors) != len(geometry.vertices):
        return geometry
    material = visual.material
    if getattr(material, "baseColorTexture", None) is not None or getattr(material, "image", None) is not None:
        return geometry
    raw = np.asarray(colors)
    linear = raw[:, :3].astype(np.float64) / (255.0 if raw.dtype == np.uint8 else 1.0)
    factor = unit_rgb(getattr(material, "baseColorFactor", None))
    if factor is not None:
        linear = linear * factor
    alpha = raw[:, 3:4].astype(np.float64) / (255.0 if raw.dtype == np.uint8 else 1.0) if raw.shape[1] > 3 else None
    rgba = np.concatenate(
        [linear_to_srgb(np.clip(linear, 0, 1)), np.ones((len(raw), 1)) if alpha is None else alpha], 1
    )
    out = geometry.copy()
    out.visual = trimesh.visual.ColorVisuals(out, vertex_colors=np.round(np.clip(rgba, 0, 1) * 255).astype(np.uint8))
    return out
