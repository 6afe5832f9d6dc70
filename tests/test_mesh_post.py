"""svd3d.recon.mesh and svd3d.recon.texture: cleanup, decimation, UV unwrapping and baking views into textures
and vertex colours, checked against ground-truth renders of known meshes (svd3d.render)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from PIL import Image

from svd3d.cameras import StaticOrbit
from svd3d.errors import SVD3DError
from svd3d.geometry import import_open3d, interpolate_corners, linear_to_srgb, mesh_surface, sample_texture
from svd3d.recon import texture
from svd3d.recon.mesh import FACE_PRESETS, check_faces, cleanup, decimate
from svd3d.recon.texture import apply_texture, bake_texture, bake_vertex_colors, rasterize_uv, unwrap
from svd3d.recon.views import load_views
from svd3d.render import render_to_folder, render_views

VIEW_SIZE = 160  # views rendered for baking
HELD_OUT = (np.array([25.0, 5.0, 35.0, 15.0]), np.array([40.0, 115.0, 200.0, 290.0]))  # off the orbit's azimuths


def surface_distance(a: trimesh.Trimesh, b: trimesh.Trimesh, n: int = 20000) -> tuple[float, float]:
    """(mean, max) of the point-to-surface distances of points sampled on each mesh to the other, both ways
    (a symmetric Chamfer / Hausdorff estimate without the sampling noise of point-to-point distances)."""
    o3d = import_open3d()
    out = []
    for src, dst, seed in ((a, b, 0), (b, a, 1)):
        points, _ = trimesh.sample.sample_surface(src, n, seed=seed)
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(
            o3d.core.Tensor(dst.vertices.astype(np.float32)), o3d.core.Tensor(dst.faces.astype(np.uint32))
        )
        out.append(scene.compute_distance(o3d.core.Tensor(points.astype(np.float32))).numpy())
    d = np.concatenate(out)
    return float(d.mean()), float(d.max())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) / 255 - b.astype(np.float64) / 255) ** 2)
    return float(10 * np.log10(1.0 / max(mse, 1e-12)))


# ------------------------------------------------------------------------------------------------ meshes

# six distinct sides, each with a pattern (stripes, a disc) so that a blurred or misplaced bake shows
SIDE_COLORS = np.array(
    [[220, 40, 40], [40, 170, 60], [40, 70, 220], [235, 200, 30], [200, 60, 200], [40, 190, 200]], np.uint8
)


def side_image(side: int = 32) -> np.ndarray:
    """(2 * side, 3 * side, 3) uint8 atlas: six cells, one per box side, each a colour with a dark stripe and a
    white disc."""
    y, x = np.mgrid[0:side, 0:side]
    stripe = (x > side * 0.15) & (x < side * 0.3)
    disc = (x - side * 0.62) ** 2 + (y - side * 0.55) ** 2 < (side * 0.22) ** 2
    cells = []
    for color in SIDE_COLORS:
        cell = np.broadcast_to(color, (side, side, 3)).copy()
        cell[stripe] = color // 4
        cell[disc] = 245
        cells.append(cell)
    return np.concatenate([np.concatenate(cells[:3], 1), np.concatenate(cells[3:], 1)], 0)


def textured_box(extents=(0.7, 0.55, 0.45), image: np.ndarray | None = None) -> trimesh.Trimesh:
    """A box with 24 vertices, each side mapped onto its own cell of `side_image` (trimesh uv convention)."""
    box = trimesh.creation.box(extents=extents)
    normals = box.face_normals
    vertices, faces, uvs = [], [], []
    axes = {0: (2, 1), 1: (0, 2), 2: (0, 1)}  # side normal axis -> in-plane axes (u, v)
    for side, (axis, sign) in enumerate([(0, 1), (0, -1), (1, 1), (1, -1), (2, 1), (2, -1)]):
        sel = np.flatnonzero(np.isclose(normals[:, axis], sign))
        corners = np.unique(box.faces[sel])
        remap = {int(c): len(vertices) + i for i, c in enumerate(corners)}
        pts = box.vertices[corners]
        a, b = axes[axis]
        span = np.ptp(pts, axis=0)
        local = np.stack([(pts[:, a] - pts[:, a].min()) / span[a], (pts[:, b] - pts[:, b].min()) / span[b]], 1)
        cell_u, cell_v = side % 3, 1 - side // 3  # cell column, row from the bottom
        uvs.append((np.array([cell_u, cell_v]) + 0.1 + 0.8 * local) / np.array([3.0, 2.0]))
        vertices.extend(pts)
        faces.extend([[remap[int(i)] for i in f] for f in box.faces[sel]])
    image = side_image() if image is None else image
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(image))
    visual = trimesh.visual.TextureVisuals(uv=np.concatenate(uvs), material=material)
    return trimesh.Trimesh(np.array(vertices), np.array(faces), visual=visual, process=False)


def colored_box(extents, color, center) -> trimesh.Trimesh:
    box = trimesh.creation.box(extents=extents)
    box.apply_translation(center)
    box.visual.vertex_colors = np.tile([*color, 255], (len(box.vertices), 1)).astype(np.uint8)
    return box


def occluding_boxes() -> trimesh.Trimesh:
    """A large blue box behind a small red one (in front along +z): the red one hides part of the blue front
    from the views near azimuth 0."""
    back = colored_box((0.7, 0.6, 0.2), (40, 60, 230), (0.0, 0.0, -0.15))
    front = colored_box((0.25, 0.25, 0.15), (230, 30, 30), (0.0, 0.0, 0.2))
    return trimesh.util.concatenate([back, front])


def true_texels(truth: trimesh.Trimesh, mesh_uv: trimesh.Trimesh, texel, face, bary) -> np.ndarray:
    """(T, 3) sRGB 0..255 colours of `truth`'s texture at the surface points texels of `mesh_uv` show (both
    meshes with the same triangles in the same order)."""
    np.testing.assert_allclose(mesh_uv.vertices[mesh_uv.faces], truth.vertices[truth.faces])
    surface = mesh_surface(truth)
    uv = interpolate_corners(bary.astype(np.float32), surface.face_uv[face])
    return linear_to_srgb(sample_texture(surface, uv)) * 255


def geometry(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The same triangles without colours (what a reconstruction hands the bake)."""
    return trimesh.Trimesh(np.asarray(mesh.vertices), np.asarray(mesh.faces), process=False)


@pytest.fixture(scope="module")
def box_views(tmp_path_factory):
    """21 unlit views of the textured box, orbit at 20 degrees (the top is seen, the bottom is not)."""
    folder = tmp_path_factory.mktemp("box") / "views"
    render_to_folder(textured_box(), StaticOrbit(20.0, 21).angles(), folder, VIEW_SIZE, light=None)
    return load_views(folder)


@pytest.fixture(scope="module")
def occlusion_views(tmp_path_factory):
    folder = tmp_path_factory.mktemp("occlusion") / "views"
    render_to_folder(occluding_boxes(), StaticOrbit(10.0, 21).angles(), folder, VIEW_SIZE, light=None)
    return load_views(folder)


# ------------------------------------------------------------------------------------------------ cleanup


def test_cleanup_removes_floaters_and_junk_keeps_the_body():
    body = trimesh.creation.icosphere(subdivisions=4, radius=0.4)
    floater = trimesh.creation.icosphere(subdivisions=1, radius=0.03)
    floater.apply_translation((0.45, 0.45, 0.45))
    mesh = trimesh.util.concatenate([body, floater])
    faces = np.concatenate([mesh.faces, mesh.faces[:3], [[0, 0, 1], [5, 5, 5]]])  # duplicates and degenerates
    vertices = np.concatenate([mesh.vertices, mesh.vertices[:10]])  # unreferenced duplicates
    messy = trimesh.Trimesh(vertices, faces[:, ::-1], process=False)  # inside-out
    clean = cleanup(messy)
    assert len(clean.faces) == len(body.faces)
    assert clean.is_watertight and clean.is_winding_consistent
    assert clean.volume > 0  # outward again
    np.testing.assert_allclose(clean.bounds, body.bounds, atol=1e-9)
    assert len(clean.vertices) == len(body.vertices)


def test_cleanup_keeps_two_comparable_bodies_and_fraction_controls_it():
    a = trimesh.creation.icosphere(subdivisions=3, radius=0.25)
    b = trimesh.creation.icosphere(subdivisions=3, radius=0.1)
    b.apply_translation((0.35, 0.0, 0.0))
    both = trimesh.util.concatenate([a, b])  # b has 16% of a's area
    assert len(cleanup(both).faces) == len(both.faces)
    assert len(cleanup(both, min_component_fraction=0.5).faces) == len(a.faces)


def test_cleanup_fills_a_small_hole_and_orients_an_open_surface_outward():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    holed = trimesh.Trimesh(sphere.vertices, sphere.faces[1:], process=False)
    assert cleanup(holed).is_watertight
    # a large hole cannot be filled; the open surface is still turned outward
    keep = sphere.triangles_center[:, 1] < 0.3
    cap_off = trimesh.Trimesh(sphere.vertices, sphere.faces[keep][:, ::-1], process=False)
    clean = cleanup(cap_off)
    assert not clean.is_watertight
    outward = np.einsum("fc,fc->f", clean.face_normals, clean.triangles_center)
    assert (outward > 0).all()


def test_cleanup_keeps_vertex_colors():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    colors = np.column_stack([(sphere.vertices + 0.5) * 255, np.full(len(sphere.vertices), 255)]).astype(np.uint8)
    sphere.visual.vertex_colors = colors
    clean = cleanup(sphere)
    assert clean.visual.kind == "vertex"
    expected = np.round(np.clip((clean.vertices + 0.5) * 255, 0, 255))
    np.testing.assert_allclose(clean.visual.vertex_colors[:, :3], expected, atol=1)


def test_cleanup_taubin_smoothing_denoises_without_shrinking():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.4)
    rng = np.random.default_rng(0)
    noisy = sphere.copy()
    noisy.vertices += sphere.vertex_normals * rng.normal(0, 0.01, (len(sphere.vertices), 1))
    smooth = cleanup(noisy, smooth_iterations=10)
    radius_err = lambda m: np.abs(np.linalg.norm(m.vertices, axis=1) - 0.4).mean()  # noqa: E731
    assert radius_err(smooth) < 0.5 * radius_err(noisy)
    assert abs(smooth.volume / sphere.volume - 1) < 0.02


def test_cleanup_rejects_bad_arguments():
    sphere = trimesh.creation.icosphere(subdivisions=1)
    with pytest.raises(SVD3DError, match="min_component_fraction"):
        cleanup(sphere, min_component_fraction=1.5)
    with pytest.raises(SVD3DError, match="smooth_iterations"):
        cleanup(sphere, smooth_iterations=-1)
    with pytest.raises(SVD3DError, match="no faces"):
        cleanup(trimesh.Trimesh(np.zeros((3, 3)), np.zeros((0, 3), int)))


# ------------------------------------------------------------------------------------------------ decimate


def test_decimate_hits_the_budget_and_keeps_the_shape():
    torus = trimesh.creation.torus(major_radius=0.3, minor_radius=0.1, major_sections=128, minor_sections=64)
    assert len(torus.faces) == 16384
    small = decimate(torus, 2000)
    assert 0.95 * 2000 <= len(small.faces) <= 2000
    mean, worst = surface_distance(small, torus)
    assert mean < 0.001 and worst < 0.01  # 0.1% and 1% of the object's size
    assert abs(small.area / torus.area - 1) < 0.02


def test_decimate_is_a_noop_under_budget_and_keeps_vertex_colors():
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=0.4)  # 20480 faces
    sphere.visual.vertex_colors = np.column_stack(
        [(sphere.vertices + 0.5) * 255, np.full(len(sphere.vertices), 255)]
    ).astype(np.uint8)
    same = decimate(sphere, 30000)
    assert len(same.faces) == len(sphere.faces) and same is not sphere
    small = decimate(sphere, FACE_PRESETS["mobile"])
    assert len(small.faces) <= 5000 and small.visual.kind == "vertex"
    expected = np.clip((small.vertices + 0.5) * 255, 0, 255)  # the colour field, at the new vertices
    assert np.abs(small.visual.vertex_colors[:, :3] - expected).mean() < 3


def test_decimate_turns_a_texture_into_vertex_colors():
    box = textured_box()
    dense = box.subdivide().subdivide()
    small = decimate(dense, 100)
    assert small.visual.kind == "vertex"
    assert len(np.unique(small.visual.vertex_colors[:, :3], axis=0)) > 3


@pytest.mark.parametrize("bad", [3, 0, -5, 2.5, True, "many", None])
def test_decimate_rejects_bad_budgets(bad):
    with pytest.raises(SVD3DError, match="--faces"):
        decimate(trimesh.creation.icosphere(subdivisions=2), bad)


def test_face_presets():
    assert FACE_PRESETS == {"mobile": 5000, "default": 20000, "hero": 50000}
    assert check_faces("hero") == 50000 and check_faces("1234") == 1234 and check_faces(np.int64(8)) == 8
    assert check_faces("auto") == "auto"  # the number is picked once the views' size is known


# ------------------------------------------------------------------------------------------------ unwrap


def chart_labels(mesh_uv: trimesh.Trimesh) -> np.ndarray:
    """(F,) chart id per face: faces joined by shared (split) vertices."""
    edges = np.vstack([mesh_uv.faces[:, [0, 1]], mesh_uv.faces[:, [1, 2]]])
    labels = trimesh.graph.connected_component_labels(edges, node_count=len(mesh_uv.vertices))
    return labels[mesh_uv.faces[:, 0]]


def test_unwrap_gives_packed_charts_without_overlap_and_with_gutters():
    torus = trimesh.creation.torus(major_radius=0.3, minor_radius=0.12, major_sections=48, minor_sections=24)
    size, padding = 512, 2
    mesh_uv = unwrap(torus, size=size, padding=padding)
    uv = mesh_uv.visual.uv
    # same surface, split along seams
    assert len(mesh_uv.faces) == len(torus.faces)
    np.testing.assert_allclose(mesh_uv.vertices[mesh_uv.faces], torus.vertices[torus.faces])
    assert (uv >= 0).all() and (uv <= 1).all()
    # no overlap: every texel centre lies in at most one triangle
    face_uv = uv[mesh_uv.faces]
    cover = np.zeros(size * size, int)
    for chunk in np.array_split(np.arange(len(face_uv)), 8):
        texel, _, _, inside = rasterize_uv(face_uv[chunk], size, margin=0.0)
        np.add.at(cover, texel[inside], 1)
    # triangles that share an edge may both claim a texel centre exactly on it; overlapping charts claim many
    assert (cover > 1).mean() < 1e-3
    area = 0.5 * np.abs(np.cross(face_uv[:, 1] - face_uv[:, 0], face_uv[:, 2] - face_uv[:, 0])).sum()
    assert abs((cover > 0).sum() / size**2 - area) < 0.02  # rasterised area matches the UV area
    assert area > 0.4  # the atlas is used
    # gutters: texels of two different charts are never closer than the two charts' padding
    texel, face, _, inside = rasterize_uv(face_uv, size, margin=0.0)
    label = np.full(size * size, -1)
    label[texel[inside]] = chart_labels(mesh_uv)[face[inside]]
    label = label.reshape(size, size)
    reach = 2 * padding - 1
    for dy in range(0, reach + 1):
        for dx in range(-reach, reach + 1):
            if (dy, dx) <= (0, 0) or dx * dx + dy * dy > reach * reach:
                continue
            a = label[: size - dy, max(0, -dx) : size - max(0, dx)]
            b = label[dy:, max(0, dx) : size - max(0, -dx)]
            assert not ((a >= 0) & (b >= 0) & (a != b)).any(), f"charts closer than {reach} texels ({dx}, {dy})"


def test_rasterize_uv_covers_a_triangle_with_exact_barycentrics():
    face_uv = np.array([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])  # lower-left half of the texture
    size = 64
    texel, face, bary, inside = rasterize_uv(face_uv, size, margin=1.5)
    assert (face == 0).all()
    row, col = texel // size, texel % size
    u, v = (col + 0.5) / size, 1 - (row + 0.5) / size
    centre_inside = u + v <= 1.0 + 1e-9
    assert (inside == centre_inside).all()
    assert abs(inside.sum() - size * size / 2) <= size  # the half, up to the diagonal's texels
    np.testing.assert_allclose(bary[inside][:, 1], u[inside], atol=1e-9)  # corner 1 is uv (1, 0)
    np.testing.assert_allclose(bary[inside][:, 2], v[inside], atol=1e-9)
    assert (bary >= 0).all() and np.allclose(bary.sum(1), 1)
    assert (~inside).sum() > 0  # the extrapolated band beyond the diagonal


def test_unwrap_rejects_bad_sizes():
    mesh = trimesh.creation.icosphere(subdivisions=1)
    with pytest.raises(SVD3DError, match="texture size"):
        unwrap(mesh, size=8)
    with pytest.raises(SVD3DError, match="padding"):
        unwrap(mesh, size=64, padding=50)


# ------------------------------------------------------------------------------------------------ bake


def test_bake_reproduces_held_out_views_of_a_textured_box(box_views):
    truth = textured_box()
    mesh_uv = unwrap(geometry(truth), size=256)
    image = bake_texture(mesh_uv, box_views, size=256)
    assert image.mode == "RGB" and image.size == (256, 256)
    baked = apply_texture(mesh_uv, image)
    gt = render_views(truth, *HELD_OUT, size=128, light=None).rgba[..., :3]
    out = render_views(baked, *HELD_OUT, size=128, light=None).rgba[..., :3]
    scores = [psnr(a, b) for a, b in zip(gt, out, strict=True)]
    assert min(scores) > 26, scores
    # the atlas holds no white: gutters are filled with chart colours (mipmaps never bleed white)
    pixels = np.asarray(image).reshape(-1, 3)
    texel, face, bary, _ = rasterize_uv(mesh_uv.visual.uv[mesh_uv.faces], 256)
    gutter = np.setdiff1d(np.arange(256 * 256), texel)
    assert (pixels[gutter] < 250).any(axis=1).all()
    # texel by texel against the true texture at the same surface point (same triangles, same order)
    truth_color = true_texels(truth, mesh_uv, texel, face, bary)
    seen = mesh_uv.face_normals[face][:, 1] > -0.9  # all but the bottom, which no view sees
    err = np.abs(pixels[texel].astype(float) - truth_color)[seen].max(axis=1)
    assert np.median(err) < 3 and np.percentile(err, 90) < 30, np.percentile(err, [50, 90, 99])


def test_bake_paints_unseen_sides_from_neighbours_not_white(box_views):
    mesh_uv = unwrap(geometry(textured_box()), size=128)
    image = np.asarray(bake_texture(mesh_uv, box_views, size=128))
    texel, face, _, _ = rasterize_uv(mesh_uv.visual.uv[mesh_uv.faces], 128)
    bottom = mesh_uv.face_normals[face][:, 1] < -0.9  # never seen from a 20 degree orbit
    assert bottom.any()
    assert (image.reshape(-1, 3)[texel[bottom]] < 235).any(axis=1).all()


def test_bake_respects_occlusion(occlusion_views, monkeypatch):
    """Texels of the blue box hidden behind the red one in the front views must not be painted red."""
    mesh_uv = unwrap(geometry(occluding_boxes()), size=256)
    texel, face, _, _ = rasterize_uv(mesh_uv.visual.uv[mesh_uv.faces], 256)
    on_back = mesh_uv.triangles_center[face][:, 2] < 0.0  # faces of the blue box

    def reddest(image) -> float:
        rgb = np.asarray(image).reshape(-1, 3)[texel[on_back]].astype(float)
        return float((rgb[:, 0] - rgb[:, 2]).max())

    assert reddest(bake_texture(mesh_uv, occlusion_views, size=256)) < 0
    # without the visibility tests (the ray to each point, the depth check of each view pixel) it would fail
    monkeypatch.setattr(texture, "VISIBILITY_TOLERANCE", np.inf)
    monkeypatch.setattr(texture, "SAME_SURFACE_DEPTH", np.inf)
    assert reddest(bake_texture(mesh_uv, occlusion_views, size=256)) > 100


def test_bake_trusts_the_input_view_most(box_views):
    """A view disagreeing with the others wins where it is weighted up (the input view)."""
    views = box_views.subset(np.arange(len(box_views)))
    views.images = views.images.copy()
    views.images[0][views.masks[0] > 0.5] = (0.0, 0.0, 0.0)  # the input view says: black
    mesh_uv = unwrap(geometry(textured_box()), size=128)
    texel, face, _, _ = rasterize_uv(mesh_uv.visual.uv[mesh_uv.faces], 128)
    front = mesh_uv.face_normals[face][:, 2] > 0.9  # the side facing the input view
    darkness = []
    for weight in (1.0, 20.0):
        views.weights = np.ones(len(views), np.float32)
        views.weights[0] = weight
        image = np.asarray(bake_texture(mesh_uv, views, size=128)).reshape(-1, 3)
        darkness.append(255 - image[texel[front]].mean())
    assert darkness[1] > darkness[0] + 40


def test_bake_vertex_colors_matches_the_truth_and_respects_occlusion(occlusion_views):
    truth = occluding_boxes()
    dense = truth.subdivide().subdivide().subdivide()  # vertices inside the faces, not only at the corners
    baked = bake_vertex_colors(geometry(dense), occlusion_views)
    assert baked.visual.kind == "vertex"
    on_back = dense.vertices[:, 2] < 0.0  # the blue box ends at z = -0.05, the red one starts at 0.125
    expected = np.where(on_back[:, None], (40, 60, 230), (230, 30, 30))
    seen = dense.vertices[:, 1] > -0.29  # the bottoms are not seen from a 10 degree orbit
    err = np.abs(baked.visual.vertex_colors[seen, :3].astype(float) - expected[seen])
    assert np.median(err) < 3 and np.percentile(err, 90) < 25
    rgb = baked.visual.vertex_colors[on_back, :3].astype(float)
    assert (rgb[:, 0] < rgb[:, 2]).all()  # nothing on the blue box is painted red


def test_bake_vertex_colors_of_a_low_poly_box_keeps_each_side_its_colour(tmp_path):
    """Every vertex of a 24-vertex box sits on a crease; samples inside its faces still find the side's colour."""
    solid = np.repeat(np.repeat(SIDE_COLORS.reshape(2, 3, 3), 16, axis=0), 16, axis=1)  # one flat colour per cell
    truth = textured_box(image=solid)
    render_to_folder(truth, StaticOrbit(20.0, 21).angles(), tmp_path / "views", VIEW_SIZE, light=None)
    baked = bake_vertex_colors(geometry(truth), load_views(tmp_path / "views"))
    cell = np.floor(truth.visual.uv * [3, 2]).astype(int)  # (V, 2) column, row from the bottom
    expected = SIDE_COLORS[cell[:, 0] + 3 * (1 - cell[:, 1])].astype(float)
    seen = baked.vertex_normals[:, 1] > -0.9  # the bottom side is never seen
    err = np.abs(baked.visual.vertex_colors[:, :3].astype(float) - expected).max(axis=1)
    assert err[seen].max() < 10, err


def test_bake_needs_uvs_and_visible_geometry(box_views):
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.3)
    with pytest.raises(SVD3DError, match="unwrap"):
        bake_texture(sphere, box_views, size=64)
    far = unwrap(sphere, size=64)
    far.apply_translation((0.0, 5.0, 0.0))  # outside every view
    with pytest.raises(SVD3DError, match="no view sees"):
        bake_texture(far, box_views, size=64)
