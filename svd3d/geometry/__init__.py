"""svd3d's geometry ground floor: what rendering, reconstruction and evaluation share about meshes and rays.

    mesh.py     load_mesh, MESH_SUFFIXES: mesh files -> one trimesh in svd3d's world (glTF vertex colours kept)
    colour.py   srgb_to_linear, linear_to_srgb, SRGB_DECODE, encode_srgb: sRGB <-> linear light
    surface.py  mesh_surface, albedo, sample_texture: what colours a surface point; corner_normals (crease rule)
    rays.py     raycasting_scene, import_open3d: Embree ray casting (rays from svd3d.cameras.pixel_grid and its
                ray builders); edge_pixels: silhouettes, occlusions and creases in what a ray cast sees
    volume.py   grid_shape, marching_cubes: grids over a box and their iso-surfaces (one winding rule)

It imports nothing of svd3d but errors.py: rendering, reconstruction and evaluation build on it. Heavy libraries
(trimesh, open3d, scikit-image) load on first use. Import the names from here (``from svd3d.geometry import ...``).
"""

from svd3d.geometry.colour import SRGB_DECODE, encode_srgb, linear_to_srgb, srgb_to_linear, unit_rgb
from svd3d.geometry.mesh import MESH_SUFFIXES, FitTo, load_mesh
from svd3d.geometry.rays import (
    EDGE_DEPTH_JUMP,
    cast_rays,
    edge_pixels,
    import_open3d,
    raycasting_scene,
    set_ray_threads,
)
from svd3d.geometry.surface import (
    CREASE_DEG,
    DEFAULT_GREY,
    Surface,
    albedo,
    corner_normals,
    interpolate_corners,
    mesh_surface,
    sample_texture,
)
from svd3d.geometry.volume import grid_shape, marching_cubes

__all__ = [
    "CREASE_DEG",
    "DEFAULT_GREY",
    "EDGE_DEPTH_JUMP",
    "MESH_SUFFIXES",
    "SRGB_DECODE",
    "FitTo",
    "Surface",
    "albedo",
    "cast_rays",
    "corner_normals",
    "edge_pixels",
    "encode_srgb",
    "grid_shape",
    "import_open3d",
    "interpolate_corners",
    "linear_to_srgb",
    "load_mesh",
    "marching_cubes",
    "mesh_surface",
    "raycasting_scene",
    "sample_texture",
    "set_ray_threads",
    "srgb_to_linear",
    "unit_rgb",
]
