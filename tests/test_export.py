"""svd3d.recon.export: every format round-trips through trimesh (geometry, UVs, texture pixels, colours),
--height places the asset on the ground, files are written atomically, bad arguments name the fix."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import trimesh
from PIL import Image

from svd3d.errors import SVD3DError
from svd3d.geometry import linear_to_srgb
from svd3d.recon import export as export_module
from svd3d.recon.export import EXPORTERS, check_height, export_mesh, parse_formats
from svd3d.recon.texture import apply_texture, unwrap
from svd3d.render import render_views

FORMATS = ("glb", "obj", "ply", "stl")


def gradient_image(size: int = 64) -> Image.Image:
    y, x = np.mgrid[0:size, 0:size]
    rgb = np.stack([x * 255 // (size - 1), y * 255 // (size - 1), (x + y) * 127 // (size - 1)], -1)
    return Image.fromarray(rgb.astype(np.uint8))


@pytest.fixture(scope="module")
def textured() -> trimesh.Trimesh:
    """An unwrapped torus (split seams, as the bake hands it over) with a PBR texture."""
    torus = trimesh.creation.torus(major_radius=0.3, minor_radius=0.1, major_sections=24, minor_sections=12)
    return apply_texture(unwrap(torus, size=64), gradient_image())


def vertex_colored() -> trimesh.Trimesh:
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    rgb = np.clip((sphere.vertices + 0.5) * 255, 0, 255)
    sphere.visual.vertex_colors = np.column_stack([rgb, np.full(len(rgb), 255)]).astype(np.uint8)
    return sphere


def glb_json(path) -> dict:
    data = path.read_bytes()
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert magic == b"glTF" and version == 2 and length == len(data)
    chunk_length, kind = struct.unpack_from("<I4s", data, 12)
    assert kind == b"JSON"
    return json.loads(data[20 : 20 + chunk_length])


def load_single(path) -> trimesh.Trimesh:
    """The one geometry of a file, as trimesh reads it (scene geometry: concatenation drops glTF COLOR_0)."""
    scene = trimesh.load(path, force="scene", process=False)
    assert len(scene.geometry) == 1
    return next(iter(scene.geometry.values()))


def corner_uvs(mesh) -> np.ndarray:
    """(F*3, 5) rows of corner position and uv, sorted: compares UV layouts whatever the vertex order."""
    rows = np.column_stack([mesh.vertices[mesh.faces].reshape(-1, 3), mesh.visual.uv[mesh.faces].reshape(-1, 2)])
    return rows[np.lexsort(np.round(rows, 5).T[::-1])]


# ------------------------------------------------------------------------------------------------ round trips


def test_registry_is_a_plain_dict_of_every_format():
    assert isinstance(EXPORTERS, dict) and tuple(EXPORTERS) == FORMATS


def test_glb_round_trip_textured(textured, tmp_path):
    path = tmp_path / "mesh.glb"
    assert export_mesh(textured, path) == [path]
    back = load_single(path)
    assert len(back.vertices) == len(textured.vertices) and len(back.faces) == len(textured.faces)
    np.testing.assert_allclose(back.bounds, textured.bounds, atol=1e-6)
    np.testing.assert_allclose(corner_uvs(back), corner_uvs(textured), atol=1e-6)
    material = back.visual.material
    assert isinstance(material, trimesh.visual.material.PBRMaterial)
    np.testing.assert_array_equal(np.asarray(material.baseColorTexture.convert("RGB")), np.asarray(gradient_image()))
    tree = glb_json(path)
    pbr = tree["materials"][0]["pbrMetallicRoughness"]
    assert pbr["metallicFactor"] == 0.0 and pbr["roughnessFactor"] >= 0.9 and "baseColorTexture" in pbr
    assert "baseColorFactor" not in pbr or pbr["baseColorFactor"] == [1.0, 1.0, 1.0, 1.0]
    assert tree["images"][0]["mimeType"] == "image/png" and "bufferView" in tree["images"][0]  # embedded
    assert tree["samplers"][0]["minFilter"] == 9987  # trilinear mipmaps
    attributes = tree["meshes"][0]["primitives"][0]["attributes"]
    assert {"POSITION", "NORMAL", "TEXCOORD_0"} <= set(attributes) and "COLOR_0" not in attributes
    assert tree["asset"]["version"] == "2.0"


def test_glb_normals_agree_across_uv_seams(textured, tmp_path):
    """Split seam vertices get the same normal on both sides, so engines show no shading seam."""
    path = tmp_path / "mesh.glb"
    export_mesh(textured, path)
    back = load_single(path)
    normals = np.asarray(back.vertex_normals)
    key = np.round(back.vertices, 6)
    _, group = np.unique(key, axis=0, return_inverse=True)
    group = group.reshape(-1)
    assert len(np.unique(group)) < len(back.vertices)  # there are seams
    for g in np.unique(group[np.bincount(group)[group] > 1])[:50]:
        members = normals[group == g]
        np.testing.assert_allclose(members, members[:1].repeat(len(members), 0), atol=1e-5)
    # and they are the surface's normals: close to the normals of the faces around each corner
    corner = np.einsum("fkc,fc->fk", normals[back.faces], back.face_normals)
    assert corner.min() > 0.8


def test_glb_vertex_colors_are_linear_color_0_with_a_non_metal_material(tmp_path):
    mesh = vertex_colored()
    path = tmp_path / "colored.glb"
    export_mesh(mesh, path)
    tree = glb_json(path)
    primitive = tree["meshes"][0]["primitives"][0]
    accessor = tree["accessors"][primitive["attributes"]["COLOR_0"]]
    assert accessor["componentType"] == 5126 and accessor["count"] == len(mesh.vertices)
    pbr = tree["materials"][primitive["material"]]["pbrMetallicRoughness"]
    assert pbr["metallicFactor"] == 0.0  # the glTF default material is a metal: vertex colours would look black
    back = load_single(path)
    assert len(back.vertices) == len(mesh.vertices) and len(back.faces) == len(mesh.faces)
    linear = np.asarray(back.visual.vertex_attributes["color"], float)[:, :3]
    np.testing.assert_allclose(linear_to_srgb(linear) * 255, mesh.visual.vertex_colors[:, :3], atol=0.51)


def test_obj_round_trip_textured_writes_obj_mtl_png(textured, tmp_path):
    path = tmp_path / "mesh.obj"
    files = export_mesh(textured, path)
    assert files == [path, tmp_path / "mesh.mtl", tmp_path / "mesh.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mesh.mtl", "mesh.obj", "mesh.png"]  # no temp files
    mtl = (tmp_path / "mesh.mtl").read_text()
    assert "map_Kd mesh.png" in mtl and "Kd 1.000000 1.000000 1.000000" in mtl and ".tmp" not in mtl
    assert "mtllib mesh.mtl" in path.read_text()
    back = trimesh.load(path, process=False)
    assert len(back.faces) == len(textured.faces)
    np.testing.assert_allclose(back.bounds, textured.bounds, atol=1e-6)
    np.testing.assert_allclose(corner_uvs(back), corner_uvs(textured), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(back.visual.material.image.convert("RGB")), np.asarray(gradient_image()))


def test_obj_vertex_colors_and_plain_geometry(tmp_path):
    mesh = vertex_colored()
    files = export_mesh(mesh, tmp_path / "colored.obj")
    assert [p.name for p in files] == ["colored.obj"]
    back = trimesh.load(files[0], process=False)
    assert len(back.vertices) == len(mesh.vertices) and back.visual.kind == "vertex"
    np.testing.assert_allclose(back.visual.vertex_colors[:, :3], mesh.visual.vertex_colors[:, :3], atol=1)
    box = trimesh.creation.box(extents=(0.5, 0.3, 0.2))
    back = trimesh.load(export_mesh(box, tmp_path / "box.obj")[0], process=False)
    assert len(back.faces) == 12
    np.testing.assert_allclose(back.bounds, box.bounds, atol=1e-6)


def test_obj_names_without_spaces_for_the_mtl(textured, tmp_path):
    files = export_mesh(textured, tmp_path / "my mesh.obj")
    assert [p.name for p in files] == ["my mesh.obj", "my_mesh.mtl", "my_mesh.png"]
    assert "map_Kd my_mesh.png" in files[1].read_text()
    back = trimesh.load(files[0], process=False)
    assert back.visual.material.image is not None


def test_ply_round_trip_vertex_colors(tmp_path):
    mesh = vertex_colored()
    back = trimesh.load(export_mesh(mesh, tmp_path / "colored.ply")[0], process=False)
    assert len(back.vertices) == len(mesh.vertices) and len(back.faces) == len(mesh.faces)
    np.testing.assert_allclose(back.bounds, mesh.bounds, atol=1e-6)
    np.testing.assert_array_equal(back.visual.vertex_colors, mesh.visual.vertex_colors)


def test_ply_of_a_textured_mesh_samples_the_texture_and_merges_seams(textured, tmp_path):
    back = trimesh.load(export_mesh(textured, tmp_path / "mesh.ply")[0], process=False)
    assert len(back.faces) == len(textured.faces)
    assert len(back.vertices) < len(textured.vertices)  # seams merged again
    assert back.is_watertight
    assert back.visual.kind == "vertex" and len(np.unique(back.visual.vertex_colors[:, :3], axis=0)) > 10


def test_stl_round_trip_geometry(textured, tmp_path):
    back = trimesh.load(export_mesh(textured, tmp_path / "mesh.stl")[0])
    assert len(back.faces) == len(textured.faces)
    np.testing.assert_allclose(back.bounds, textured.bounds, atol=1e-6)
    assert abs(back.volume - textured.volume) < 1e-6


def test_textured_glb_renders_like_the_source(textured, tmp_path):
    path = tmp_path / "mesh.glb"
    export_mesh(textured, path)
    back = trimesh.load(path, force="scene").to_mesh()
    angles = ([20.0, -10.0], [30.0, 200.0])
    a = render_views(textured, *angles, size=96, light=None).rgba
    b = render_views(back, *angles, size=96, light=None).rgba
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_vertex_colored_glb_renders_in_its_colours(tmp_path):
    """svd3d's own --no-uv GLB (linear COLOR_0 + a material) must not load grey: load_mesh reads COLOR_0."""
    from svd3d.geometry import load_mesh

    mesh = trimesh.creation.icosphere(subdivisions=2)
    colours = np.where(mesh.vertices[:, :1] > 0, [[200, 30, 30, 255]], [[20, 60, 210, 255]]).astype(np.uint8)
    mesh.visual.vertex_colors = colours
    path = tmp_path / "mesh.glb"
    export_mesh(mesh, path)
    angles = ([10.0, 5.0], [90.0, 270.0])  # one view of each half
    a = render_views(load_mesh(path, fit_to="sphere"), *angles, size=64, light=None).rgba
    b = render_views(load_mesh(_save_ply(mesh, tmp_path), fit_to="sphere"), *angles, size=64, light=None).rgba
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2
    assert tuple(a[0, 32, 32, :3]) != tuple(a[1, 32, 32, :3])  # not one grey


def _save_ply(mesh: trimesh.Trimesh, folder) -> str:
    path = folder / "mesh.ply"
    mesh.export(path)
    return str(path)


# ------------------------------------------------------------------------------------------------ height


@pytest.mark.parametrize("fmt", FORMATS)
def test_height_scales_and_stands_the_asset_on_the_ground(textured, tmp_path, fmt):
    height = 1.8
    files = export_mesh(textured, tmp_path / f"mesh.{fmt}", height=height)
    back = trimesh.load(files[0], force="mesh")
    lo, hi = back.bounds
    assert lo[1] == pytest.approx(0.0, abs=1e-5) and hi[1] == pytest.approx(height, abs=1e-5)
    assert (lo + hi)[[0, 2]] == pytest.approx([0.0, 0.0], abs=1e-5)  # origin at the bottom centre
    scale = height / textured.extents[1]
    np.testing.assert_allclose(back.extents, textured.extents * scale, atol=1e-5)  # uniform


def test_without_height_the_frame_is_kept(textured, tmp_path):
    back = trimesh.load(export_mesh(textured, tmp_path / "mesh.glb")[0], force="mesh")
    np.testing.assert_allclose(back.bounds, textured.bounds, atol=1e-6)


# ------------------------------------------------------------------------------------------------ errors


def test_unknown_format_names_the_choices(textured, tmp_path):
    with pytest.raises(SVD3DError, match="--format glb,obj,ply,stl") as err:
        export_mesh(textured, tmp_path / "mesh.fbx")
    assert "'.fbx'" in str(err.value)
    with pytest.raises(SVD3DError, match="--format"):
        export_mesh(textured, tmp_path / "mesh")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("height", [0, -1.0, float("nan"), float("inf"), "tall"])
def test_bad_height_names_the_option(textured, tmp_path, height):
    with pytest.raises(SVD3DError, match="--height"):
        export_mesh(textured, tmp_path / "mesh.glb", height=height)
    assert not any(tmp_path.iterdir())


def test_flat_mesh_cannot_take_a_height(tmp_path):
    flat = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 0, 1]], [[0, 1, 2]])
    with pytest.raises(SVD3DError, match="flat"):
        export_mesh(flat, tmp_path / "flat.glb", height=1.0)


def test_parse_formats():
    assert parse_formats("glb") == ("glb",)
    assert parse_formats(" GLB, obj,.ply,glb ") == ("glb", "obj", "ply")
    for bad in ("fbx", "glb,usdz", "", " , "):
        with pytest.raises(SVD3DError, match="--format glb,obj,ply,stl"):
            parse_formats(bad)
    assert check_height(None) is None and check_height("2") == 2.0


def test_a_failed_export_leaves_no_file(textured, tmp_path, monkeypatch):
    def broken(mesh, path):
        from svd3d.outputs import atomic_file

        with atomic_file(path) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("disk full")

    monkeypatch.setitem(export_module.EXPORTERS, "glb", broken)
    with pytest.raises(RuntimeError):
        export_mesh(textured, tmp_path / "mesh.glb")
    assert not any(tmp_path.iterdir())
