"""svd3d.recon.nerfstudio: the dataset nerfstudio reads (checked structurally everywhere, and by nerfstudio's own
dataparser where nerfstudio is installed), the frame mapping back from nerfstudio, the missing-extra error, and a
2-iteration nerfacto run + mesh export where nerfstudio is installed (`.ci/nerfstudio_check` builds that venv)."""

from __future__ import annotations

import importlib.util
import json
import shlex
import sys

import numpy as np
import pytest
import trimesh
from PIL import Image

from svd3d.cameras import Intrinsics, StaticOrbit, orbit_c2w
from svd3d.errors import SVD3DError
from svd3d.recon import nerfstudio as ns
from svd3d.recon.views import ViewSet, load_views

HAS_NERFSTUDIO = importlib.util.find_spec("nerfstudio") is not None
needs_nerfstudio = pytest.mark.skipif(
    not HAS_NERFSTUDIO,
    reason="nerfstudio is not installed here (optional extra: pip install 'svd3d[nerfstudio]' beside torch 2.14.1 + "
    "torchvision 0.29.1); .ci/nerfstudio_check runs these tests in such a venv",
)


def _views(n: int = 6, size: int = 32, seed: int = 0) -> ViewSet:
    """A synthetic ViewSet: orbit cameras, random colours composited on white, masks with fractional edges."""
    rng = np.random.default_rng(seed)
    elev, azim = StaticOrbit(10.0, n).angles()
    y, x = np.mgrid[0:size, 0:size] + 0.5
    disc = np.clip(size * 0.3 - np.hypot(x - size / 2, y - size / 2), 0.0, 1.0).astype(np.float32)  # (H, W)
    masks = np.repeat(disc[None], n, axis=0)
    colour = rng.uniform(0.0, 1.0, (n, size, size, 3)).astype(np.float32)
    images = colour * masks[..., None] + (1.0 - masks[..., None])
    return ViewSet(
        images=images.astype(np.float32),
        masks=masks,
        c2w=orbit_c2w(elev, azim),
        intrinsics=Intrinsics.from_fov(size, size),
        weights=np.ones(n, np.float32),
        names=[f"frames/{i:03d}.png" for i in range(n)],
    )


def _rendered_views(n: int = 6, size: int = 32) -> ViewSet:
    """Views of a real object: svd3d's renderer on a box-and-sphere, loaded back as `svd3d recon` loads them."""
    from svd3d.render import render_views

    mesh = trimesh.util.concatenate(
        [trimesh.creation.box(extents=(0.6, 0.3, 0.4)), trimesh.creation.icosphere(2, radius=0.25)]
    )
    elev, azim = StaticOrbit(10.0, n).angles()
    result = render_views(mesh, elev, azim, size, supersample=2)
    return ViewSet(
        images=np.asarray(result.rgba[..., :3], np.float32) / 255.0,
        masks=np.asarray(result.rgba[..., 3], np.float32) / 255.0,
        c2w=result.c2w,
        intrinsics=result.intrinsics,
        weights=np.ones(n, np.float32),
        names=[f"images/{i:03d}.png" for i in range(n)],
    )


# ------------------------------------------------------------------------------------------------ dataset


def test_write_dataset_images_are_rgba_with_the_masks_as_alpha(tmp_path):
    views = _views()
    folder = ns.write_dataset(views, tmp_path / "data")
    for i in range(len(views)):
        with Image.open(folder / "images" / f"{i:03d}.png") as img:
            assert img.mode == "RGBA"
            rgba = np.asarray(img, np.float32) / 255.0
        alpha = rgba[..., 3]
        np.testing.assert_array_equal(np.round(alpha * 255), np.round(views.masks[i] * 255))
        # nerfstudio blends on white: rgb * a + (1 - a) gives the view back
        blended = rgba[..., :3] * alpha[..., None] + (1.0 - alpha[..., None])
        np.testing.assert_allclose(blended, views.images[i], atol=1.5 / 255)
    assert 0 < (views.masks > 0).mean() < 1 and ((views.masks > 0) & (views.masks < 1)).any()  # edges fractional


def test_write_dataset_transforms_json_fields_and_cameras(tmp_path):
    views = _views()
    folder = ns.write_dataset(views, tmp_path / "data")
    data = json.loads((folder / "transforms.json").read_text())
    intr = views.intrinsics
    assert data["camera_model"] == "OPENCV"
    assert (data["w"], data["h"]) == (intr.width, intr.height)
    assert (data["fl_x"], data["fl_y"], data["cx"], data["cy"]) == (intr.fl_x, intr.fl_y, intr.cx, intr.cy)
    assert all(data[k] == 0.0 for k in ("k1", "k2", "p1", "p2"))
    assert data["orientation_override"] == "none"
    assert [f["file_path"] for f in data["frames"]] == [f"images/{i:03d}.png" for i in range(len(views))]
    assert sorted(f["file_path"] for f in data["frames"]) == [f["file_path"] for f in data["frames"]]  # ns sorts
    np.testing.assert_allclose(np.array([f["transform_matrix"] for f in data["frames"]]), views.c2w, atol=1e-9)
    assert not any("mask_path" in f for f in data["frames"])  # nerfstudio: mask_path = pixels to ignore
    meta = data["svd3d"]["nerfstudio"]
    assert meta["dataparser"] == ns.DATAPARSER_SETTINGS
    assert meta["source_names"] == views.names
    assert "--orientation-method none --center-method none --auto-scale-poses False" in meta["ns_train"]


def test_write_dataset_round_trips_through_load_views(tmp_path):
    views = _rendered_views()
    back = load_views(ns.write_dataset(views, tmp_path / "data"))
    assert back.mask_source == "alpha"
    np.testing.assert_allclose(back.c2w, views.c2w, atol=1e-9)
    assert back.intrinsics == views.intrinsics
    np.testing.assert_allclose(back.masks, np.round(views.masks * 255) / 255, atol=1e-6)
    np.testing.assert_allclose(back.images, views.images, atol=1.5 / 255)


def test_write_dataset_replaces_its_own_folder_but_not_a_foreign_one(tmp_path):
    views = _views(n=3)
    ns.write_dataset(views, tmp_path / "data")
    ns.write_dataset(views.subset([0, 1]), tmp_path / "data")  # an earlier dataset is replaced
    assert sorted(p.name for p in (tmp_path / "data" / "images").iterdir()) == ["000.png", "001.png"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(SVD3DError, match="svd3d did not write"):
        ns.write_dataset(views, tmp_path / "other")


def test_write_dataset_rejects_images_that_do_not_match_the_intrinsics(tmp_path):
    views = _views(n=2)
    views.intrinsics = Intrinsics.from_fov(40, 40)
    with pytest.raises(SVD3DError, match="intrinsics say 40x40"):
        ns.write_dataset(views, tmp_path / "data")


def test_near_far_cover_the_scene_box_from_every_camera():
    c2w = orbit_c2w([10, -20, 30], [0, 90, 200], radius=2.0)
    near, far = ns.near_far(c2w)
    corners = np.array(np.meshgrid(*[[-ns.SCENE_SCALE, ns.SCENE_SCALE]] * 3)).reshape(3, -1).T
    dist = np.linalg.norm(corners[None] - c2w[:, None, :3, 3], axis=-1)
    assert 0 < near <= dist.min() and far >= dist.max()


# ------------------------------------------------------------------------------------------------ frames


def test_dataparser_transform_maps_back_to_the_svd3d_frame(tmp_path):
    """nerfstudio's record: poses' = transform @ c2w, translation * scale; points map the same way, and back."""
    angle = np.radians(30)
    rot = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    transform = np.concatenate([rot, [[0.1], [-0.2], [0.3]]], axis=1)
    (tmp_path / "dataparser_transforms.json").write_text(json.dumps({"transform": transform.tolist(), "scale": 0.4}))
    dp = ns.DataparserTransform.read(tmp_path / "dataparser_transforms.json")
    c2w = orbit_c2w([15.0], [40.0])[0]
    ns_pose = transform @ c2w  # (3, 4), what the dataparser does to a camera
    ns_pose[:, 3] *= 0.4
    np.testing.assert_allclose(dp.to_nerfstudio(c2w[None, :3, 3])[0], ns_pose[:, 3], atol=1e-12)
    points = np.random.default_rng(0).uniform(-0.5, 0.5, (50, 3))
    np.testing.assert_allclose(dp.from_nerfstudio(dp.to_nerfstudio(points)), points, atol=1e-12)


def test_dataparser_transform_rejects_a_bad_file(tmp_path):
    (tmp_path / "dataparser_transforms.json").write_text(json.dumps({"transform": [[1, 0, 0]], "scale": 1}))
    with pytest.raises(SVD3DError, match="3x4"):
        ns.DataparserTransform.read(tmp_path / "dataparser_transforms.json")


# ------------------------------------------------------------------------------------------------ missing extra


def test_missing_nerfstudio_raises_the_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nerfstudio", None)  # import nerfstudio -> ImportError, installed or not
    with pytest.raises(SVD3DError, match=r"pip install 'svd3d\[nerfstudio\]'") as info:
        ns.require_nerfstudio()
    assert "torch==2.14.1 torchvision==0.29.1" in str(info.value)
    folder = ns.write_dataset(_views(n=2), tmp_path / "data")  # writing the dataset needs no nerfstudio
    with pytest.raises(SVD3DError, match="needs nerfstudio"):
        ns.train_nerfacto(folder, iterations=1, device="cpu", output_dir=tmp_path / "out")
    with pytest.raises(SVD3DError, match="needs nerfstudio"):
        ns.reconstruct_nerfacto(_views(n=2), iterations=1, device="cpu", workdir=tmp_path / "work")
    assert not (tmp_path / "work").exists()  # nothing written before the check


def test_train_nerfacto_checks_its_inputs(tmp_path):
    with pytest.raises(SVD3DError, match="iterations must be a positive integer"):
        ns.train_nerfacto(tmp_path, iterations=0, device="cpu", output_dir=tmp_path / "out")
    with pytest.raises(SVD3DError, match="has no transforms.json"):
        ns.train_nerfacto(tmp_path, iterations=1, device="cpu", output_dir=tmp_path / "out")
    with pytest.raises(SVD3DError, match="is not a nerfstudio run"):
        ns.nerfacto_mesh(tmp_path)
    with pytest.raises(SVD3DError, match="unknown mesh export method"):
        ns.nerfacto_mesh(tmp_path, method="poisson")


# ------------------------------------------------------------------------------------------------ with nerfstudio


@needs_nerfstudio
def test_nerfstudio_dataparser_reads_the_dataset_unchanged(tmp_path):
    """nerfstudio's own `nerfstudio-data` dataparser: same cameras, files, intrinsics; no re-orientation or scale."""
    import torch
    from nerfstudio.data.datasets.base_dataset import InputDataset

    views = _rendered_views()
    folder = ns.write_dataset(views, tmp_path / "data")
    out = ns.dataparser_config(folder).setup().get_dataparser_outputs(split="train")
    assert [p.relative_to(folder).as_posix() for p in out.image_filenames] == [
        f"images/{i:03d}.png" for i in range(len(views))
    ]
    np.testing.assert_allclose(out.cameras.camera_to_worlds.numpy(), views.c2w[:, :3, :4], atol=1e-6)
    np.testing.assert_allclose(out.dataparser_transform.numpy(), np.eye(4)[:3], atol=0)
    assert out.dataparser_scale == 1.0
    np.testing.assert_allclose(out.scene_box.aabb.numpy(), [[-ns.SCENE_SCALE] * 3, [ns.SCENE_SCALE] * 3])
    intr = views.intrinsics
    for name, value in (("fx", intr.fl_x), ("fy", intr.fl_y), ("cx", intr.cx), ("cy", intr.cy)):
        np.testing.assert_allclose(getattr(out.cameras, name).numpy(), value, rtol=1e-6)
    assert int(out.cameras.width[0]) == intr.width and int(out.cameras.height[0]) == intr.height
    assert out.mask_filenames is None and out.alpha_color is None
    image = InputDataset(out).get_image_float32(0)  # (H, W, 4): RGBA kept, the model blends it on white
    assert image.shape == (intr.height, intr.width, 4)
    np.testing.assert_allclose(image[..., 3].numpy(), np.round(views.masks[0] * 255) / 255, atol=1e-6)
    assert torch.isfinite(image).all()


@needs_nerfstudio
def test_ns_train_command_parses_to_the_same_settings(tmp_path):
    """The `ns-train` line written into transforms.json gives nerfstudio's CLI the settings train_nerfacto uses."""
    import tyro
    from nerfstudio.configs.method_configs import AnnotatedBaseConfigUnion

    views = _views(n=3)
    folder = ns.write_dataset(views, tmp_path / "data")
    command = json.loads((folder / "transforms.json").read_text())["svd3d"]["nerfstudio"]["ns_train"]
    parsed = tyro.cli(AnnotatedBaseConfigUnion, args=shlex.split(command)[1:])
    ours = ns.nerfacto_config(folder, iterations=10, device="cpu", output_dir=tmp_path / "out")
    for key, value in ns.DATAPARSER_SETTINGS.items():
        if key != "downscale_factor":
            assert getattr(parsed.pipeline.datamanager.dataparser, key) == value, key
    for key in ("background_color", "disable_scene_contraction", "proposal_initial_sampler"):
        assert getattr(parsed.pipeline.model, key) == getattr(ours.pipeline.model, key), key
    assert parsed.pipeline.model.near_plane == pytest.approx(ours.pipeline.model.near_plane, abs=1e-4)
    assert parsed.pipeline.model.far_plane == pytest.approx(ours.pipeline.model.far_plane, abs=1e-4)
    assert parsed.pipeline.model.camera_optimizer.mode == "off"


@needs_nerfstudio
@pytest.mark.slow
def test_nerfacto_trains_two_iterations_and_exports_in_the_svd3d_frame(tmp_path):
    """A 2-iteration CPU run: nerfstudio's run folder, identity dataparser transform, a checkpoint that loads
    (torch >= 2.6), and the density export in svd3d's frame (a threshold under the initial density: the cube)."""
    views = _rendered_views(n=4, size=24)
    folder = ns.write_dataset(views, tmp_path / "data")
    run = ns.train_nerfacto(folder, iterations=2, device="cpu", output_dir=tmp_path / "out", seed=0, rays_per_batch=64)
    assert (run / "config.yml").is_file()
    assert sorted(p.name for p in (run / "nerfstudio_models").iterdir()) == ["step-000000001.ckpt"]
    dp = ns.DataparserTransform.read(run / "dataparser_transforms.json")
    np.testing.assert_allclose(dp.transform, np.eye(4)[:3], atol=0)
    assert dp.scale == 1.0
    pipeline, _ = ns.load_pipeline(run)
    assert pipeline.datamanager.train_dataparser_outputs.cameras.camera_to_worlds.shape == (4, 3, 4)
    # nerfacto starts near density 0.01 everywhere inside its scene box: threshold 0.001 -> the cube's surface
    cube = ns.nerfacto_mesh(run, resolution=16, density_threshold=0.001)
    np.testing.assert_allclose(cube.bounds, [[-0.5] * 3, [0.5] * 3], atol=1.0 / 15)
    assert cube.is_watertight and cube.volume > 0  # closed, normals outward
    auto = ns.nerfacto_mesh(run, resolution=16)  # the level chosen against the dataset's masks
    assert len(auto.faces) > 0 and np.all(np.abs(auto.bounds) <= 0.5 + 1.0 / 15)
    with pytest.raises(SVD3DError, match="never reaches the threshold"):
        ns.nerfacto_mesh(run, resolution=16, density_threshold=1e6)
    with pytest.raises(SVD3DError, match="no surface"):  # nerfstudio's TSDF exporter runs; nothing to find yet
        ns.nerfacto_mesh(run, resolution=16, method="tsdf")


def test_density_threshold_is_chosen_by_the_silhouettes():
    """A soft ball of density (peak 40 at the centre, falling with radius): the chosen level's surface is the
    sphere whose silhouettes the views show, radius 0.3, whatever the scale of the density."""
    from svd3d.render import render_silhouettes

    axis = np.linspace(-0.5, 0.5, 48)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    radius = np.sqrt(x**2 + y**2 + z**2)
    density = (40.0 * np.exp(-((radius / 0.25) ** 2))).astype(np.float32)  # level 40 e^-1.44 = 9.5 at r = 0.3
    elev, azim = StaticOrbit(10.0, 6).angles()
    c2w, intr = orbit_c2w(elev, azim), Intrinsics.from_fov(48, 48)
    masks = render_silhouettes(trimesh.creation.icosphere(4, radius=0.3), c2w, intr).astype(np.float32)
    level, iou = ns.choose_density_threshold(density, axis, masks, c2w, intr)
    assert iou > 0.9
    surface_radius = 0.25 * np.sqrt(np.log(40.0 / level))
    assert surface_radius == pytest.approx(0.3, abs=0.015)
