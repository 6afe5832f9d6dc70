"""svd3d.geometry and its neighbours: the one pixel-ray convention (svd3d.cameras: both ray forms, bit for bit),
marching cubes' one winding rule, grid shapes, sRGB round trips; svd3d.recon.views.downscale_views (masks with
their intrinsics)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from svd3d.cameras import Intrinsics, grid_rays, orbit_c2w, pixel_grid, pixel_rays, subpixel_rays
from svd3d.geometry import SRGB_DECODE, encode_srgb, grid_shape, marching_cubes, srgb_to_linear
from svd3d.recon.views import downscale_views

INTRINSICS = [Intrinsics.from_fov(64, 64), Intrinsics.from_fov(37, 23, 40.0), Intrinsics(20, 14, 17.0, 16.5, 9.3, 7.1)]


@pytest.mark.parametrize("intr", INTRINSICS, ids=lambda i: f"{i.width}x{i.height}")
def test_pixel_grid_is_the_convention(intr):
    """Pixel u's centre ray: ((u + 0.5 - cx) / fl_x, -(v + 0.5 - cy) / fl_y, -1); s x s rays at (i + 0.5) / s."""
    x, y = pixel_grid(intr, 1, np.float64)
    assert x.shape == (intr.width, 1) and y.shape == (intr.height, 1)
    np.testing.assert_array_equal(x[:, 0], (np.arange(intr.width) + 0.5 - intr.cx) / intr.fl_x)
    np.testing.assert_array_equal(y[:, 0], -(np.arange(intr.height) + 0.5 - intr.cy) / intr.fl_y)
    x32, y32 = pixel_grid(intr, 1)
    assert x32.dtype == y32.dtype == np.float32
    np.testing.assert_array_equal(x32, x.astype(np.float32))
    xs, ys = pixel_grid(intr, 3, np.float64)
    np.testing.assert_allclose(xs[:, 1], x[:, 0], rtol=0, atol=1e-12)  # the middle subpixel ray is the centre one
    np.testing.assert_allclose(np.diff(xs, axis=1), 1 / (3 * intr.fl_x), rtol=1e-9)
    np.testing.assert_allclose(np.diff(ys, axis=1), -1 / (3 * intr.fl_y), rtol=1e-9)


@pytest.mark.parametrize("intr", INTRINSICS, ids=lambda i: f"{i.width}x{i.height}")
def test_both_ray_forms_are_bit_identical_to_their_callers_formulas(intr):
    """pixel_rays (the field's and the hull's: float64 maths, unit directions) and grid_rays (the renderer's and the
    texture bake's: float32 maths, camera z = -1) reproduce the formulas their callers used, bit for bit."""
    c2w = orbit_c2w([15.0, -20.0, 40.0], [30.0, 200.0, 311.0], 2.1)
    # float64, normalised (what svd3d.cameras.pixel_rays computed)
    u = (np.arange(intr.width) + 0.5 - intr.cx) / intr.fl_x
    v = -(np.arange(intr.height) + 0.5 - intr.cy) / intr.fl_y
    cam = np.stack([*np.meshgrid(u, v, indexing="xy"), -np.ones((intr.height, intr.width))], -1).reshape(-1, 3)
    dirs = np.einsum("nij,pj->npi", c2w[:, :3, :3], cam)
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    origins, unit = pixel_rays(c2w, intr)
    assert origins.dtype == unit.dtype == np.float32
    np.testing.assert_array_equal(unit, dirs.reshape(-1, 3).astype(np.float32))
    np.testing.assert_array_equal(origins, np.repeat(c2w[:, :3, 3], intr.width * intr.height, 0).astype(np.float32))
    # float32, unnormalised (what svd3d.render computed): x X + y Y - Z
    rays = grid_rays(c2w, pixel_grid(intr, 1))
    assert rays.dtype == np.float32 and rays.shape == (len(c2w), intr.width * intr.height, 6)
    axes = c2w[:, :3, :3].astype(np.float32)
    xx, yy = np.meshgrid(u.astype(np.float32), v.astype(np.float32), indexing="xy")
    expected = xx.reshape(1, -1, 1) * axes[:, None, :, 0] + (
        yy.reshape(1, -1, 1) * axes[:, None, :, 1] - axes[:, None, :, 2]
    )
    np.testing.assert_array_equal(rays[..., 3:], expected)
    # the two forms are one convention: same origins, same directions up to length
    length = np.linalg.norm(rays[..., 3:], axis=-1, keepdims=True)
    np.testing.assert_allclose((rays[..., 3:] / length).reshape(-1, 3), unit, atol=1e-6)
    np.testing.assert_allclose(rays[..., :3].reshape(-1, 3), origins, atol=1e-6)


def test_subpixel_rays_are_the_grid_rays_of_a_finer_grid():
    intr = INTRINSICS[2]
    c2w = orbit_c2w([10.0, 30.0], [0.0, 120.0])
    s = 3
    grid = pixel_grid(intr, s)
    view, pixel = np.array([0, 1, 1]), np.array([0, 17, intr.width * intr.height - 1])
    sub = subpixel_rays(c2w, grid, view, pixel)  # (K, s*s, 6)
    for k, (i, p) in enumerate(zip(view, pixel, strict=True)):
        row, col = divmod(int(p), intr.width)
        fine = grid_rays(c2w[i : i + 1], (grid[0][col][:, None], grid[1][row][:, None]))  # one pixel's s x s grid
        np.testing.assert_allclose(sub[k], fine[0], atol=1e-6)


def blobs(seed: int) -> np.ndarray:
    """A volume with several dense blobs, one hollow (a cavity inside), touching the volume's border."""
    rng = np.random.default_rng(seed)
    axis = np.linspace(-1, 1, 24)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    volume = np.zeros_like(x)
    for centre in rng.uniform(-0.9, 0.9, (4, 3)):
        volume += np.exp(-((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2) / 0.08)
    r = np.sqrt(x**2 + y**2 + z**2)
    volume += np.exp(-((r - 0.6) ** 2) / 0.01)  # a shell: its inside is a cavity
    return (volume + 0.3 * rng.random(volume.shape)).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_marching_cubes_winds_normals_out_of_dense_objects(seed):
    """One winding rule: normals point from higher to lower values. For the field and the hull it gives the faces
    their old rule did (scikit-image's faces, flipped when the signed volume came out negative), for nerfacto's
    export the ones it wrote (scikit-image's faces reversed)."""
    volume = blobs(seed)
    verts, faces = marching_cubes(volume, 0.6, (0.1, 0.2, 0.1))
    mesh = trimesh.Trimesh(verts, faces, process=False)
    assert mesh.is_watertight and mesh.volume > 0
    from skimage.measure import marching_cubes as skimage_marching_cubes

    raw_verts, raw_faces, _, _ = skimage_marching_cubes(np.pad(volume, 1), level=0.6, spacing=(0.1, 0.2, 0.1))
    np.testing.assert_array_equal(verts, raw_verts)
    np.testing.assert_array_equal(faces, raw_faces[:, ::-1])
    old = trimesh.Trimesh(raw_verts, raw_faces, process=False)
    if old.volume < 0:
        old.invert()
    np.testing.assert_array_equal(mesh.faces, old.faces)
    np.testing.assert_array_equal(mesh.vertex_normals, old.vertex_normals)
    # a dense object's vertex normals point away from its centre
    single = marching_cubes(np.pad(np.ones((3, 3, 3), np.float32), 2), 0.5, (1.0, 1.0, 1.0))
    ball = trimesh.Trimesh(*single, process=False)
    outward = np.einsum("vc,vc->v", ball.vertex_normals, ball.vertices - ball.vertices.mean(axis=0))
    assert (outward > 0).all()


def test_grid_shape_covers_the_box_with_cubic_cells():
    lo, hi = np.array([-0.3, -0.2, -0.1]), np.array([0.3, 0.25, 0.1])
    shape, size = grid_shape(lo, hi, 64)
    assert size == pytest.approx(0.6 / 64)
    assert shape[0] == 65  # the longest side: cells + 1 vertices
    span = hi - lo
    assert all(
        (n - 1) * size >= extent - 1e-9 and (n - 2) * size < extent for n, extent in zip(shape, span, strict=True)
    )
    flat, _ = grid_shape(np.zeros(3), np.array([1.0, 1e-9, 0.5]), 16)
    assert flat[1] == 2  # at least two vertices along every axis
    # what the field's extraction computed on its own (every axis spans at least one field cell)
    for a, b, cells in ((lo, hi, 192), (np.array([0.1, -0.4, 0.0]), np.array([0.5, 0.4, 0.02]), 8)):
        size = float((b - a).max()) / cells
        old = [int(np.ceil((b[i] - a[i]) / size - 1e-6)) + 1 for i in range(3)]
        assert list(grid_shape(a, b, cells)[0]) == old


def test_srgb_table_and_encoder_round_trip():
    assert SRGB_DECODE.dtype == np.float32 and SRGB_DECODE[0] == 0 and SRGB_DECODE[255] == 1
    np.testing.assert_array_equal(encode_srgb(SRGB_DECODE), np.arange(256))
    np.testing.assert_allclose(SRGB_DECODE, srgb_to_linear(np.arange(256) / 255), rtol=1e-6)
    np.testing.assert_array_equal(encode_srgb(np.array([-1.0, 2.0])), [0, 255])


def test_downscale_views_whole_factor_averages_blocks():
    rng = np.random.default_rng(0)
    masks = rng.random((2, 301, 290)).astype(np.float32)
    intr = Intrinsics.from_fov(290, 301)
    images, small, out = downscale_views(masks, intr, 144, whole_factor=True)
    assert images is None and small.shape == (2, 150, 145)  # f = 301 // 144 = 2; the last row dropped
    np.testing.assert_allclose(small[1, 3, 4], masks[1, 6:8, 8:10].mean(), rtol=1e-6)
    assert (out.width, out.height, out.fl_x, out.cx, out.cy) == (145, 150, intr.fl_x / 2, intr.cx / 2, intr.cy / 2)
    assert downscale_views(masks, intr, 200, whole_factor=True)[1] is masks  # f = 1: unchanged


def test_downscale_views_area_reaches_the_size():
    rng = np.random.default_rng(0)
    masks = rng.random((2, 90, 60)).astype(np.float32)
    images = rng.random((2, 90, 60, 3)).astype(np.float32)
    intr = Intrinsics(60, 90, 80.0, 81.0, 30.0, 45.0)
    small_images, small, out = downscale_views(masks, intr, 36, images)
    assert small.shape == (2, 36, 24) and small_images.shape == (2, 36, 24, 3)
    assert (out.width, out.height) == (24, 36)
    assert (out.fl_x, out.fl_y, out.cx, out.cy) == pytest.approx((32.0, 32.4, 12.0, 18.0))
    flat = downscale_views(np.full_like(masks, 0.25), intr, 36)[1]
    np.testing.assert_allclose(flat, 0.25, rtol=1e-6)  # an average of pixels
    same = downscale_views(masks, intr, 90, images)
    assert same[0] is images and same[1] is masks and same[2] is intr  # never upscales
