"""svd3d.render and svd3d.recon.hull: cameras right end to end (rendered silhouettes carve back the mesh), pixel
and axis conventions, textures and colours, depth, nerfstudio folders, every bench mesh."""

from __future__ import annotations

import builtins
import json
import os
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from svd3d.cameras import DynamicOrbit, Intrinsics, StaticOrbit, orbit_c2w, read_transforms
from svd3d.errors import SVD3DError
from svd3d.geometry import import_open3d, load_mesh
from svd3d.recon.hull import carve_visual_hull, silhouette_iou
from svd3d.render import frame_safe_fit, render_cameras, render_silhouettes, render_to_folder, render_views

BENCH_MESHES = Path(os.environ.get("SVD3D_BENCH_MESHES", Path(__file__).resolve().parents[2] / "shared/bench/meshes"))
BOX = (0.8, 0.5, 0.3)  # extents along x, y, z: every axis distinguishable


def box(extents=BOX) -> trimesh.Trimesh:
    return trimesh.creation.box(extents=extents)


def l_shape() -> trimesh.Trimesh:
    """A body with an arm towards +x, +y, +z: no mirror symmetry."""
    body = box((0.5, 0.6, 0.3))
    body.apply_translation((-0.1, 0.0, 0.0))
    arm = box((0.45, 0.15, 0.15))
    arm.apply_translation((0.25, 0.15, 0.12))
    return trimesh.util.concatenate([body, arm])


def textured_quad(pixels: np.ndarray) -> trimesh.Trimesh:
    """A unit square in the z = 0 plane facing +z, the whole image mapped upright: uv (0, 0) at its lower left."""
    vertices = np.array([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]], float)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(pixels))
    visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    return trimesh.Trimesh(vertices, faces, visual=visual, process=False)


QUADRANTS = np.array([[[230, 30, 30], [30, 200, 30]], [[30, 30, 230], [240, 220, 20]]], np.uint8)  # TL, TR / BL, BR


def quadrant_image(side: int = 64) -> np.ndarray:
    return np.repeat(np.repeat(QUADRANTS, side // 2, axis=0), side // 2, axis=1)


# ------------------------------------------------------------------------------------------ cameras, end to end


@pytest.fixture(scope="module")
def box_views():
    """The box from a static orbit at 10 degrees and a dynamic orbit that swings to +-65 degrees (tops, bottoms)."""
    e1, a1 = StaticOrbit(elevation=10, num_frames=21).angles()
    e2, a2 = DynamicOrbit(elevation=0, amplitude=80, num_frames=21, seed=0).angles()
    assert e2.max() > 60 and e2.min() < -60
    return render_views(box(), np.concatenate([e1, e2]), np.concatenate([a1, a2]), size=576, light=None)


def test_hull_of_rendered_silhouettes_recovers_the_box(box_views):
    # bounds 0.55: no box face lies on a voxel boundary, so "within one voxel" is not decided by rounding
    hull = carve_visual_hull(box_views.rgba[..., 3], box_views.c2w, box_views.intrinsics, 128, bounds=0.55)
    centres = hull.points()
    found = np.stack([centres.min(axis=0), centres.max(axis=0)])
    error = np.abs(found - box().bounds) / hull.voxel_size
    assert error.max() <= 1.0, f"hull bounds off by {error.round(2).tolist()} voxels"
    assert silhouette_iou(hull, box_views.masks, box_views.c2w, box_views.intrinsics).min() > 0.95


def test_static_orbit_alone_leaves_the_bottom_wedge(box_views):
    """A low static orbit never sees the bottom; the dynamic orbit's low views are what cut it."""
    static = slice(0, 21)
    hull = carve_visual_hull(box_views.masks[static], box_views.c2w[static], box_views.intrinsics, 128, bounds=0.55)
    below = (box().bounds[0, 1] - hull.points()[:, 1].min()) / hull.voxel_size[1]
    assert below > 3


def test_the_lowest_rim_finds_the_floor_and_the_cut_removes_the_wedge(box_views):
    """The rays through the bottom rows of each silhouette touch the box's bottom edge: the floor lies within a voxel
    and a half of the true bottom, and cutting below it leaves the hull's lowest voxels at the bottom."""
    from svd3d.recon.hull import cut_below, lowest_rim_height

    static = slice(0, 21)
    masks, c2w = box_views.masks[static], box_views.c2w[static]
    hull = carve_visual_hull(masks, c2w, box_views.intrinsics, 128, bounds=0.55)
    floor = lowest_rim_height(hull, masks, c2w, box_views.intrinsics)
    bottom = box().bounds[0, 1]
    assert abs(floor - bottom) < 1.5 * hull.voxel_size[1], (floor, bottom)
    cut = cut_below(hull, floor)
    assert (bottom - cut.points()[:, 1].min()) / hull.voxel_size[1] <= 2.5
    assert cut.occupancy.sum() < hull.occupancy.sum()
    assert (cut.occupancy <= hull.occupancy).all()  # it only removes
    # a silhouette that reaches the image's bottom edge says nothing about the floor
    cropped = masks.copy()
    cropped[:, -1, :] = True
    assert lowest_rim_height(hull, cropped, c2w, box_views.intrinsics) is None


def test_views_that_drift_lower_the_lowest_rim_but_not_a_quantile():
    """Generated views drift (here by up to 1.5 % of the image, 1.5 % in scale and a degree): the bottom rows of a
    view that drifted down look under the box, into the wedge the static orbit leaves, so the lowest rim falls
    several voxels below the bottom and the cut would leave a skirt; the views' lower quartile stays within a voxel."""
    from svd3d.recon.hull import lowest_rim_height
    from svd3d.recon.perturb import Perturbation, perturb_views

    elevations, azimuths = StaticOrbit(elevation=10, num_frames=21).angles()
    views = render_views(box(), elevations, azimuths, size=288, light=None)
    masks = perturb_views(views.rgba, Perturbation(shift=0.015, scale=0.015, rotate_deg=1.0), seed=0)[..., 3] > 127
    hull = carve_visual_hull(masks, views.c2w, views.intrinsics, 128)
    bottom, voxel = box().bounds[0, 1], hull.voxel_size[1]
    lowest = lowest_rim_height(hull, masks, views.c2w, views.intrinsics)
    quartile = lowest_rim_height(hull, masks, views.c2w, views.intrinsics, quantile=0.25)
    assert bottom - lowest > 3 * voxel, (lowest, bottom)
    assert abs(quartile - bottom) < voxel, (quartile, bottom)
    with pytest.raises(SVD3DError, match="quantile must be from 0 to 1"):
        lowest_rim_height(hull, masks, views.c2w, views.intrinsics, quantile=1.5)


def test_mirrored_azimuths_reproject_clearly_worse():
    elevations, azimuths = StaticOrbit(elevation=10, num_frames=21).angles()
    views = render_views(l_shape(), elevations, azimuths, size=256, light=None)
    right_cams, mirrored_cams = views.c2w, orbit_c2w(elevations, -azimuths)
    right = carve_visual_hull(views.masks, right_cams, views.intrinsics, 96)
    mirrored = carve_visual_hull(views.masks, mirrored_cams, views.intrinsics, 96)
    iou_right = silhouette_iou(right, views.masks, right_cams, views.intrinsics).mean()
    iou_mirrored = silhouette_iou(mirrored, views.masks, mirrored_cams, views.intrinsics).mean()
    assert iou_right > 0.95
    assert iou_mirrored < iou_right - 0.1


def test_axes_up_right_and_azimuth_direction():
    """A marker at the top front (+y, +z): top of the image always; at azimuth 90 (camera on +x, turned to its
    right from the input view) the front is on the image's left, at 270 on its right."""
    marker = box((0.2, 0.2, 0.2))
    marker.apply_translation((0.0, 0.3, 0.3))
    mesh = trimesh.util.concatenate([box((0.4, 0.4, 0.4)), marker])
    masks = render_views(mesh, [0, 0, 0], [0, 90, 270], size=128, light=None).masks
    top_centres = []
    for mask in masks:
        rows = np.nonzero(mask.any(axis=1))[0]
        assert mask[rows[0]].sum() < 0.7 * mask[rows[-1]].sum()  # the narrow marker is at the top, not the bottom
        top_centres.append(np.nonzero(mask[rows[0] : rows[0] + 5])[1].mean())
    assert abs(top_centres[0] - 63.5) < 2  # input view: the marker straight ahead, centred
    assert top_centres[1] < 50 and top_centres[2] > 77  # azimuth 90: front on the left; 270: on the right


def test_pixel_centres_give_symmetric_silhouettes():
    """Rays through (u + 0.5 - cx): a centred sphere's silhouette is symmetric in both image axes."""
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.4)
    for size in (64, 65):
        mask = render_silhouettes(sphere, orbit_c2w([0], [0]), Intrinsics.from_fov(size, size))[0]
        assert mask.any()
        np.testing.assert_array_equal(mask, mask[:, ::-1])
        np.testing.assert_array_equal(mask, mask[::-1, :])


# ------------------------------------------------------------------------------------------ colour


def test_texture_is_not_flipped(tmp_path):
    quad = textured_quad(quadrant_image())
    path = tmp_path / "quad.glb"
    quad.export(path)  # through glTF: its v axis points down the image, trimesh's up
    for mesh in (quad, load_mesh(path)):
        rgba = render_views(mesh, [0], [0], size=100, light=None).rgba[0]
        for (row, col), colour in zip([(20, 20), (20, 80), (80, 20), (80, 80)], QUADRANTS.reshape(-1, 3), strict=True):
            np.testing.assert_allclose(rgba[row, col, :3], colour, atol=2)
        assert rgba[50, 50, 3] == 255


def test_vertex_colours_are_interpolated():
    quad = textured_quad(quadrant_image())
    red, blue = [255, 0, 0, 255], [0, 0, 255, 255]
    quad.visual = trimesh.visual.ColorVisuals(quad, vertex_colors=np.array([red, blue, blue, red], np.uint8))
    rgba = render_views(quad, [0], [0], size=100, light=None).rgba[0]
    left, middle, right = rgba[50, 20, :3].astype(int), rgba[50, 50, :3].astype(int), rgba[50, 80, :3].astype(int)
    assert left[0] > 150 and left[2] < 110
    assert right[2] > 150 and right[0] < 110
    assert abs(middle[0] - middle[2]) < 8 and middle[1] < 5  # halfway between, mixed in linear light


def test_shading_and_background():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.4)
    rgba = render_views(sphere, [0], [0], size=96).rgba[0]
    assert (rgba[0, 0] == (255, 255, 255, 0)).all()  # white, transparent background
    grey = rgba[..., :3].astype(int).mean(axis=-1)
    assert grey[30, 34] > grey[62, 62] + 20  # the headlight comes from the camera's upper left
    edge = rgba[..., 3][(rgba[..., 3] > 0) & (rgba[..., 3] < 255)]
    assert edge.size > 50  # antialiased silhouette: partial coverage along the edge


def test_bench_box_texture_upright():
    path = BENCH_MESHES / "BoxTextured.glb"
    if not path.is_file():
        pytest.skip(f"bench meshes not found at {BENCH_MESHES} (set SVD3D_BENCH_MESHES)")
    rgba = render_views(load_mesh(path, fit_to="sphere"), [0], [180], size=128, light=None).rgba[0]
    sky, ground = rgba[45, 64, :3].astype(int), rgba[85, 64, :3].astype(int)  # the logo: blue sky over green hills
    assert sky[2] > sky[1] > sky[0] and ground[1] > ground[2] and ground[1] > ground[0]


# ------------------------------------------------------------------------------------------ depth, normals, folders


def test_depth_is_distance_along_minus_z():
    views = render_views(box(), [0], [0], size=97, depth=True, normals=True)
    depth, normals = views.depth[0], views.normals[0]
    face = depth[np.isfinite(depth)]
    # the front face z = 0.15 is perpendicular to the view: one depth everywhere, not the (longer) ray length
    np.testing.assert_allclose(face, 2.0 - BOX[2] / 2, atol=1e-5)
    assert np.isinf(depth[0, 0]) and (normals[0, 0] == 0).all()
    np.testing.assert_allclose(normals[48, 48], [0, 0, 1], atol=1e-5)


def test_render_to_folder_round_trip(tmp_path):
    path = tmp_path / "box.glb"
    box().export(path)
    elevations, azimuths = DynamicOrbit(num_frames=5, seed=3).angles()
    out = render_to_folder(path, (elevations, azimuths), tmp_path / "views", size=64, depth="png16", normals=True)
    intrinsics, frames = read_transforms(out / "transforms.json")
    assert intrinsics == Intrinsics.from_fov(64, 64)
    np.testing.assert_allclose([f.c2w for f in frames], orbit_c2w(elevations, azimuths), atol=1e-9)
    np.testing.assert_allclose([f.azimuth for f in frames], azimuths)
    np.testing.assert_allclose([f.elevation for f in frames], elevations)
    image = Image.open(out / frames[0].file_path)
    assert image.mode == "RGBA" and image.size == (64, 64)
    data = json.loads((out / "transforms.json").read_text())
    depth = np.asarray(Image.open(out / data["frames"][0]["depth_file_path"]))
    assert depth.dtype in (np.uint16, np.int32) and depth.max() > 1000 and depth.min() == 0  # millimetres, 0 = none
    assert (out / "normals" / "004.png").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind
    # a second render replaces it; a folder holding other files is refused
    render_to_folder(path, (elevations[:2], azimuths[:2]), out, size=32)
    assert len(list((out / "images").iterdir())) == 2
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(SVD3DError, match="svd3d did not write"):
        render_to_folder(path, (elevations, azimuths), tmp_path / "mine", size=32)


# ------------------------------------------------------------------------------------------ loading


def test_load_mesh_normalises_without_reorienting(tmp_path):
    mesh = box((4.0, 2.0, 1.0))
    scene = trimesh.Scene()
    transform = trimesh.transformations.translation_matrix((10.0, -3.0, 5.0))
    scene.add_geometry(mesh, transform=transform)
    path = tmp_path / "far.glb"
    scene.export(path)
    cube = load_mesh(path)
    np.testing.assert_allclose(cube.bounds, [[-0.5, -0.25, -0.125], [0.5, 0.25, 0.125]], atol=1e-6)
    sphere = load_mesh(path, fit_to="sphere")
    assert np.linalg.norm(sphere.vertices, axis=1).max() == pytest.approx(0.5)
    assert load_mesh(path, fit=0.5).extents.max() == pytest.approx(0.5)
    assert frame_safe_fit() == pytest.approx(0.671, abs=1e-3) and frame_safe_fit(fit_to="sphere") == 1.0


def test_load_mesh_errors(tmp_path):
    with pytest.raises(SVD3DError, match="does not exist"):
        load_mesh(tmp_path / "missing.glb")
    (tmp_path / "mesh.txt").write_text("nope")
    with pytest.raises(SVD3DError, match="must end in"):
        load_mesh(tmp_path / "mesh.txt")
    (tmp_path / "broken.obj").write_text("this is not an obj\n")
    with pytest.raises(SVD3DError):
        load_mesh(tmp_path / "broken.obj")
    with pytest.raises(SVD3DError, match="fit must be"):
        load_mesh(tmp_path / "broken.obj", fit=2.0)


def test_missing_libusb_names_the_fix(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "open3d":
            raise OSError("libusb-1.0.so.0: cannot open shared object file: No such file or directory")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(SVD3DError, match=r"apt-get install libusb-1\.0-0"):
        import_open3d()


def bench_meshes() -> list[Path]:
    if not BENCH_MESHES.is_dir():
        return []
    return sorted(p for p in BENCH_MESHES.iterdir() if p.suffix.lower() in (".glb", ".gltf", ".obj", ".ply", ".stl"))


@pytest.mark.parametrize("path", bench_meshes() or [None], ids=lambda p: p.name if p else "none")
def test_bench_mesh_renders_inside_the_frame(path):
    if path is None:
        pytest.skip(f"bench meshes not found at {BENCH_MESHES} (set SVD3D_BENCH_MESHES)")
    mesh = load_mesh(path, fit_to="sphere")
    elevations, azimuths = StaticOrbit(elevation=10, num_frames=4).angles()
    alpha = render_views(mesh, elevations, azimuths, size=96).rgba[..., 3]
    assert (alpha > 0).sum(axis=(1, 2)).min() > 200
    border = np.concatenate([alpha[:, 0], alpha[:, -1], alpha[:, :, 0], alpha[:, :, -1]], axis=1)
    assert (border == 0).all()


# ------------------------------------------------------------------------------------------ hull details


def test_hull_outside_rule_and_inputs():
    """A far view that sees the whole grid and a near one that sees only a thin cone, both masks all object:
    "unknown" keeps what the near view cannot see, "empty" carves it."""
    c2w = np.concatenate([orbit_c2w([0], [0], radius=5.0), orbit_c2w([0], [90], radius=1.2)])
    intrinsics = Intrinsics.from_fov(32, 32, 20.0)
    masks = np.ones((2, 32, 32), dtype=bool)
    unknown = carve_visual_hull(masks, c2w, intrinsics, 32, outside="unknown")
    empty = carve_visual_hull(masks, c2w, intrinsics, 32, outside="empty")
    assert unknown.occupancy.all()  # the far view sees every voxel, on its mask
    assert 0 < empty.occupancy.sum() < 0.5 * empty.occupancy.size
    with pytest.raises(SVD3DError, match="masks must be"):
        carve_visual_hull(masks[:, :16], c2w, intrinsics)
    with pytest.raises(SVD3DError, match="c2w must be"):
        carve_visual_hull(masks, c2w[:1], intrinsics)


def test_render_cameras_checks_inputs():
    with pytest.raises(SVD3DError, match="supersample"):
        render_cameras(box(), orbit_c2w([0], [0]), Intrinsics.from_fov(8, 8), supersample=0)
    with pytest.raises(SVD3DError, match="one elevation per azimuth"):
        render_views(box(), [0, 10], [0])
    with pytest.raises(SVD3DError, match="light"):
        render_views(box(), [0], [0], size=8, light="sun")


def test_render_cli(tmp_path):
    import trimesh
    from click.testing import CliRunner

    from svd3d.cameras import read_transforms
    from svd3d.cli import main

    mesh = tmp_path / "box.ply"
    trimesh.creation.box(extents=(0.8, 0.5, 0.3)).export(mesh)
    out = tmp_path / "views"
    args = [
        "render",
        str(mesh),
        "--orbit",
        "dynamic",
        "--frames",
        "5",
        "--size",
        "64",
        "--depth",
        "npy",
        "-o",
        str(out),
    ]
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    intr, frames = read_transforms(out / "transforms.json")
    assert intr.width == 64 and len(frames) == 5
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"{i:03d}.png" for i in range(5)]
    assert (out / "depth" / "000.npy").is_file()
    bad = CliRunner().invoke(main, ["render", str(tmp_path / "nope.glb"), "-o", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "does not exist" in bad.output and not (tmp_path / "x").exists()
