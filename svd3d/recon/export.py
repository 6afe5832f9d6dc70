"""Writing meshes for engines and tools: GLB, OBJ (+ MTL + PNG), PLY and STL, from a plain dict registry.

svd3d's world frame is glTF's (right-handed, +Y up, metres, front +Z), so no format needs an axis swap.

- glb: glTF 2.0 binary. PBR metallic-roughness material (metallic 0, roughness `ROUGHNESS`: lighting is baked into
  the albedo), the texture embedded as PNG (trilinear mipmapped sampler, clamped), smooth normals that agree
  across UV seams. Without UVs, vertex colours go to COLOR_0 as float32 *linear* RGB, as the glTF spec defines
  it (trimesh writes the sRGB bytes unchanged; engines then show them washed out) — trimesh reads them back
  unconverted, i.e. as linear values.
- obj: .obj + .mtl + .png beside it (Kd 1, so viewers show the texture's own colours); vertex colours as
  `v x y z r g b` (sRGB, the common extension) when there are no UVs.
- ply: binary, vertex colours (RGBA uchar, sRGB); a texture is sampled at the vertices.
- stl: binary, geometry only.

`height` (metres) is for engines: the asset is scaled uniformly so that its Y extent equals `height` and moved so
that its origin is at the bottom centre (x, z centred, resting on y = 0), where engines put an object's pivot.
Without `height` the mesh keeps svd3d's frame (centred at the origin, inside [-0.5, 0.5]^3).

Every file is written through a temporary name and renamed into place (svd3d.outputs.atomic_file).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from svd3d import signals
from svd3d.errors import SVD3DError
from svd3d.geometry import srgb_to_linear
from svd3d.outputs import atomic_file
from svd3d.recon.texture import ROUGHNESS, smooth_vertex_normals

if TYPE_CHECKING:
    import trimesh

FORMAT_HINT = "--format glb,obj,ply,stl"
GLTF_FLOAT, GLTF_LINEAR, GLTF_LINEAR_MIPMAP_LINEAR, GLTF_CLAMP = 5126, 9729, 9987, 33071


# ------------------------------------------------------------------------------------------------ checks


def parse_formats(text: str) -> tuple[str, ...]:
    """'glb,obj' -> ('glb', 'obj'): the CLI's --format list, checked before any work."""
    names = tuple(dict.fromkeys(p.strip().lower().lstrip(".") for p in str(text).split(",") if p.strip()))
    unknown = [n for n in names if n not in EXPORTERS]
    if not names or unknown:
        got = ", ".join(repr(n) for n in unknown) or repr(text)
        raise SVD3DError(f"unknown mesh format {got}; choose from {FORMAT_HINT}")
    return names


def check_height(height) -> float | None:
    """None, or a finite height in metres > 0 (--height)."""
    if height is None:
        return None
    try:
        value = float(height)
    except (TypeError, ValueError):
        raise SVD3DError(f"--height must be a number of metres, got {height!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise SVD3DError(f"--height must be a positive number of metres (e.g. --height 1.8), got {height}")
    return value


def place(mesh: trimesh.Trimesh, height: float) -> trimesh.Trimesh:
    """A copy scaled so its Y extent is `height` metres, with its origin at its bottom centre (rests on y = 0)."""
    extent_y = float(mesh.extents[1]) if len(mesh.vertices) else 0.0
    if not extent_y > 0:
        raise SVD3DError("the mesh is flat along Y (no height), so --height cannot scale it; export without --height")
    bounds = mesh.bounds
    scale = height / extent_y
    transform = np.diag([scale, scale, scale, 1.0])
    transform[:3, 3] = -scale * np.array([bounds[:, 0].mean(), bounds[0, 1], bounds[:, 2].mean()])
    out = mesh.copy()
    out.apply_transform(transform)
    return out


# ------------------------------------------------------------------------------------------------ helpers


def _has_uv(mesh) -> bool:
    uv = getattr(mesh.visual, "uv", None)
    return mesh.visual.kind == "texture" and uv is not None and len(uv) == len(mesh.vertices)


def _texture_image(mesh):
    """The base-colour image of a textured mesh (PBR or simple material), or None."""
    material = getattr(mesh.visual, "material", None)
    image = getattr(material, "baseColorTexture", None)
    if image is None:
        image = getattr(material, "image", None)
    return image


def _pbr_material(mesh):
    """The mesh's material as glTF PBR: metallic 0 and ROUGHNESS unless it says otherwise."""
    from trimesh.visual.material import PBRMaterial

    material = mesh.visual.material
    pbr = material if isinstance(material, PBRMaterial) else material.to_pbr()
    pbr = pbr.copy()
    if pbr.baseColorTexture is None:
        pbr.baseColorTexture = _texture_image(mesh)
    if pbr.metallicFactor is None:
        pbr.metallicFactor = 0.0
    if pbr.roughnessFactor is None:
        pbr.roughnessFactor = ROUGHNESS
    if pbr.baseColorTexture is not None:  # a trimesh default factor would tint the texture
        pbr.baseColorFactor = None
    return pbr


def _vertex_rgba(mesh) -> np.ndarray | None:
    """(V, 4) uint8 sRGB vertex colours of a vertex- or face-coloured mesh, else None."""
    if mesh.visual.kind in ("vertex", "face"):
        return np.asarray(mesh.visual.vertex_colors, np.uint8)
    return None


def _as_vertex_colored(mesh) -> trimesh.Trimesh:
    """A copy with vertex colours (a texture sampled at the vertices) and seam-split vertices merged again."""
    trimesh = signals.import_whole("trimesh")

    out = mesh.copy()
    if out.visual.kind == "texture":
        has_image = _texture_image(out) is not None
        out.visual = out.visual.to_color() if has_image else trimesh.visual.ColorVisuals()
        out.merge_vertices()
    return out


# ------------------------------------------------------------------------------------------------ glb


def _read_glb(data: bytes) -> tuple[dict, bytearray]:
    """GLB bytes (as trimesh writes them: a JSON chunk, then at most one BIN chunk) -> (JSON tree, binary)."""
    magic, version, _ = struct.unpack_from("<4sII", data, 0)
    length, kind = struct.unpack_from("<I4s", data, 12)
    if magic != b"glTF" or version != 2 or kind != b"JSON":
        raise ValueError("not a glTF 2.0 binary")
    tree = json.loads(data[20 : 20 + length])
    binary = bytearray()
    offset = 20 + length
    if offset < len(data):
        bin_length, bin_kind = struct.unpack_from("<I4s", data, offset)
        if bin_kind != b"BIN\0":
            raise ValueError("the second GLB chunk is not BIN")
        binary = bytearray(data[offset + 8 : offset + 8 + bin_length])
    return tree, binary


def _write_glb(tree: dict, binary: bytearray) -> bytes:
    text = json.dumps(tree, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    binary = bytes(binary) + b"\0" * (-len(binary) % 4)
    chunks = struct.pack("<I4s", len(text), b"JSON") + text
    if binary:
        chunks += struct.pack("<I4s", len(binary), b"BIN\0") + binary
    return struct.pack("<4sII", b"glTF", 2, 12 + len(chunks)) + chunks


def _append_accessor(tree: dict, binary: bytearray, data: np.ndarray, kind: str) -> int:
    """Append float32 (N, C) data as a new bufferView + accessor; returns the accessor index."""
    binary.extend(b"\0" * (-len(binary) % 4))
    raw = np.ascontiguousarray(data, dtype="<f4").tobytes()
    tree.setdefault("bufferViews", []).append({"buffer": 0, "byteOffset": len(binary), "byteLength": len(raw)})
    binary.extend(raw)
    tree.setdefault("accessors", []).append(
        {"bufferView": len(tree["bufferViews"]) - 1, "componentType": GLTF_FLOAT, "count": len(data), "type": kind}
    )
    return len(tree["accessors"]) - 1


def export_glb(mesh: trimesh.Trimesh, path: Path) -> list[Path]:
    """glTF 2.0 binary: PBR material, embedded texture or linear COLOR_0, smooth normals (module docstring)."""
    trimesh = signals.import_whole("trimesh")

    # 1. geometry, normals and material as trimesh exports them
    out = trimesh.Trimesh(np.asarray(mesh.vertices), np.asarray(mesh.faces), process=False)
    rgba = None
    if _has_uv(mesh):
        out.visual = trimesh.visual.TextureVisuals(uv=np.asarray(mesh.visual.uv), material=_pbr_material(mesh))
    else:
        rgba = _vertex_rgba(mesh)
    out.vertex_normals = smooth_vertex_normals(out)
    data = trimesh.exchange.gltf.export_glb(trimesh.Scene(out), include_normals=True)
    # 2. what trimesh does not write: linear vertex colours, a material for them, the sampler, the generator
    tree, binary = _read_glb(data)
    primitive = tree["meshes"][0]["primitives"][0]
    if rgba is not None:
        linear = srgb_to_linear(rgba[:, :3] / 255.0)
        primitive["attributes"]["COLOR_0"] = _append_accessor(tree, binary, linear, "VEC3")
    if "material" not in primitive:
        tree.setdefault("materials", []).append(
            {
                "name": "svd3d_vertex_colors" if rgba is not None else "svd3d_default",
                "pbrMetallicRoughness": {"metallicFactor": 0.0, "roughnessFactor": ROUGHNESS},
            }
        )
        primitive["material"] = len(tree["materials"]) - 1
    if tree.get("textures"):
        tree["samplers"] = [
            {"magFilter": GLTF_LINEAR, "minFilter": GLTF_LINEAR_MIPMAP_LINEAR, "wrapS": GLTF_CLAMP, "wrapT": GLTF_CLAMP}
        ]
        for texture in tree["textures"]:
            texture["sampler"] = 0
    if binary:
        tree["buffers"] = [{"byteLength": len(binary) + (-len(binary) % 4)}]
    tree["asset"] = {"version": "2.0", "generator": "svd3d"}
    with atomic_file(path) as tmp:
        tmp.write_bytes(_write_glb(tree, binary))
    return [path]


# ------------------------------------------------------------------------------------------------ obj


def _mtl(material_name: str, texture_name: str) -> str:

    return (
        "# svd3d\n"
        f"newmtl {material_name}\n"
        "Ka 1.000000 1.000000 1.000000\n"
        "Kd 1.000000 1.000000 1.000000\n"
        "Ks 0.000000 0.000000 0.000000\n"
        "Ns 0.000000\n"
        "d 1.000000\n"
        "illum 1\n"
        f"Pr {ROUGHNESS:.6f}\n"
        "Pm 0.000000\n"
        f"map_Kd {texture_name}\n"
    )


def export_obj(mesh: trimesh.Trimesh, path: Path) -> list[Path]:
    """Wavefront OBJ; with a texture also <stem>.mtl and <stem>.png beside it, referenced by those final names."""
    from trimesh.exchange.obj import export_obj as trimesh_obj

    stem = "_".join(path.stem.split())  # MTL file names cannot hold spaces
    image = _texture_image(mesh) if _has_uv(mesh) else None
    out = mesh.copy()
    out.vertex_normals = smooth_vertex_normals(out)
    if image is None:
        if out.visual.kind == "texture":  # UVs but no image: geometry only
            out = _as_vertex_colored(out)
        text = trimesh_obj(out, include_normals=True, include_color=True, include_texture=False)
        with atomic_file(path) as tmp:
            tmp.write_text(text)
        return [path]
    mtl_path, png_path = path.with_name(f"{stem}.mtl"), path.with_name(f"{stem}.png")
    text, _ = trimesh_obj(out, include_normals=True, include_texture=True, return_texture=True, mtl_name=mtl_path.name)
    used = [line.split(maxsplit=1)[1] for line in text.splitlines() if line.startswith("usemtl ")]
    material_name = used[0] if used else "svd3d_baked"
    if not used:
        text = text.replace(f"mtllib {mtl_path.name}\n", f"mtllib {mtl_path.name}\nusemtl {material_name}\n", 1)
    with atomic_file(png_path) as tmp:
        image.convert("RGB").save(tmp, format="PNG")
    with atomic_file(mtl_path) as tmp:
        tmp.write_text(_mtl(material_name, png_path.name))
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    return [path, mtl_path, png_path]


# ------------------------------------------------------------------------------------------------ ply, stl


def export_ply(mesh: trimesh.Trimesh, path: Path) -> list[Path]:
    """Binary PLY with RGBA vertex colours (a texture sampled at the vertices)."""
    from trimesh.exchange.ply import export_ply as trimesh_ply

    out = _as_vertex_colored(mesh)
    with atomic_file(path) as tmp:
        tmp.write_bytes(trimesh_ply(out, encoding="binary", vertex_normal=False))
    return [path]


def export_stl(mesh: trimesh.Trimesh, path: Path) -> list[Path]:
    """Binary STL: triangles only."""
    trimesh = signals.import_whole("trimesh")

    out = trimesh.Trimesh(np.asarray(mesh.vertices), np.asarray(mesh.faces), process=False)
    with atomic_file(path) as tmp:
        tmp.write_bytes(trimesh.exchange.stl.export_stl(out))
    return [path]


EXPORTERS = {"glb": export_glb, "obj": export_obj, "ply": export_ply, "stl": export_stl}


def files_written(path: str | Path) -> list[Path]:
    """Every file `export_mesh(mesh, path)` may write (OBJ: its .mtl and texture beside it), for checks up front."""
    path = Path(path)
    if path.suffix.lower() != ".obj":
        return [path]
    stem = "_".join(path.stem.split())
    return [path, path.with_name(f"{stem}.mtl"), path.with_name(f"{stem}.png")]


def export_mesh(mesh: trimesh.Trimesh, path: str | Path, *, height: float | None = None) -> list[Path]:
    """Write `mesh` in the format its suffix names (.glb, .obj, .ply, .stl); returns the files written.

    height: metres; scales the asset to that Y extent with its origin at the bottom centre (module docstring).
    """
    # 1. check inputs
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in EXPORTERS:
        raise SVD3DError(f"cannot export {path}: unknown mesh format {path.suffix or '(no suffix)'!r}; {FORMAT_HINT}")
    height = check_height(height)
    if len(mesh.faces) == 0:
        raise SVD3DError(f"cannot export {path}: the mesh has no faces")
    # 2. place and write
    if height is not None:
        mesh = place(mesh, height)
    return EXPORTERS[fmt](mesh, path)
