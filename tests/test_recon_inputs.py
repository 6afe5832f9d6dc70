"""`svd3d recon FOLDER` input: image paths stay inside the folder, cameras are sane, FOLDER is a folder.

Every refusal is one SVD3DError line naming the frame (index and file_path) or the field, raised before any
image is read or anything is written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import trimesh
from click.testing import CliRunner
from PIL import Image

from svd3d.cameras import CameraFrame, Intrinsics, StaticOrbit, orbit_c2w, read_transforms, write_transforms
from svd3d.cli import main
from svd3d.errors import SVD3DError
from svd3d.recon.views import check_folder, load_views
from svd3d.render import render_to_folder

SIZE = 32


def _object_image() -> Image.Image:
    img = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    img.paste((200, 30, 30), (10, 10, 22, 22))
    return img


@pytest.fixture
def dataset(tmp_path) -> Path:
    """tmp_path/data: transforms.json + images/000..002.png (an orbit at radius 2); tmp_path/outside.png beside it."""
    folder = tmp_path / "data"
    (folder / "images").mkdir(parents=True)
    elev, azim = StaticOrbit(10, 3).angles()
    c2w = orbit_c2w(elev, azim)
    frames = []
    for i in range(3):
        _object_image().save(folder / "images" / f"{i:03d}.png")
        frames.append(CameraFrame(f"images/{i:03d}.png", c2w[i], elev[i], azim[i]))
    write_transforms(folder / "transforms.json", frames, Intrinsics.from_fov(SIZE, SIZE))
    _object_image().save(tmp_path / "outside.png")
    return folder


def _edit(folder: Path, change) -> None:
    """Apply `change(data)` to folder/transforms.json."""
    path = folder / "transforms.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _refused(folder: Path, *needles: str) -> str:
    with pytest.raises(SVD3DError) as info:
        load_views(folder)
    message = str(info.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    return message


def test_valid_folder_loads(dataset):
    # a symlink that stays inside the folder is fine
    os.symlink("000.png", dataset / "images" / "link.png")
    _edit(dataset, lambda d: d["frames"][2].update(file_path="images/link.png"))
    views = load_views(dataset)
    assert len(views) == 3 and views.images.shape == (3, SIZE, SIZE, 3)
    assert views.names == ["images/000.png", "images/001.png", "images/link.png"]


def test_render_output_loads(tmp_path):
    folder = tmp_path / "box"
    render_to_folder(trimesh.creation.box((0.6, 0.4, 0.3)), StaticOrbit(20, 4).angles(), folder, SIZE, supersample=1)
    assert len(load_views(folder)) == 4


# ------------------------------------------------------------------------------------------------ paths


def test_parent_path_refused(dataset):
    _edit(dataset, lambda d: d["frames"][1].update(file_path="../outside.png"))
    message = _refused(dataset, "frame 1", "'../outside.png'", "outside the dataset folder", "copy the image into")
    assert str((dataset.parent / "outside.png").resolve()) in message


def test_deep_parent_path_refused(dataset):
    _edit(dataset, lambda d: d["frames"][2].update(file_path="images/../../outside.png"))
    _refused(dataset, "frame 2", "images/../../outside.png", "outside the dataset folder")


def test_absolute_path_refused(dataset):
    outside = str(dataset.parent / "outside.png")
    _edit(dataset, lambda d: d["frames"][0].update(file_path=outside))
    _refused(dataset, "frame 0", outside, "outside the dataset folder")


def test_symlink_outside_refused(dataset):
    link = dataset / "images" / "001.png"
    link.unlink()
    os.symlink(dataset.parent / "outside.png", link)
    _refused(dataset, "frame 1", "images/001.png", "outside the dataset folder")


def test_symlinked_images_folder_outside_refused(dataset, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (dataset / "images").rename(elsewhere)
    os.symlink(elsewhere, dataset / "images")
    _refused(dataset, "frame 0", "images/000.png", "outside the dataset folder")


def test_symlinked_dataset_folder_loads(dataset, tmp_path):
    link = tmp_path / "link-to-data"
    os.symlink(dataset, link)
    assert len(load_views(link)) == 3


# ------------------------------------------------------------------------------------------------ cameras


@pytest.mark.parametrize(
    "key,value,needles",
    [
        ("fl_x", 0, ["fl_x is 0", "focal length", "> 0"]),
        ("fl_y", -10.5, ["fl_y is -10.5", "> 0"]),
        ("fl_x", float("nan"), ["fl_x is nan"]),
        ("fl_y", float("inf"), ["fl_y is inf"]),
        ("w", 0, ["w is 0", "image width"]),
        ("h", -32, ["h is -32", "image height"]),
        ("cx", float("nan"), ["cx is nan", "principal point"]),
    ],
)
def test_bad_intrinsics_refused(dataset, key, value, needles):
    _edit(dataset, lambda d: d.update({key: value}))
    _refused(dataset, "transforms.json", *needles)


def _set_matrix(folder: Path, index: int, change) -> None:
    def edit(data):
        c2w = np.array(data["frames"][index]["transform_matrix"])
        data["frames"][index]["transform_matrix"] = change(c2w).tolist()

    _edit(folder, edit)


def _scaled(c2w):
    c2w[:3, :3] *= 2.0
    return c2w


def _mirrored(c2w):
    c2w[:3, 0] *= -1.0
    return c2w


def _last_row(c2w):
    c2w[3] = [0, 0, 1, 1]
    return c2w


def _at_origin(c2w):
    c2w[:3, 3] = 0.0
    return c2w


def _in_box(c2w):
    c2w[:3, 3] = [0.4, -0.2, 0.5]
    return c2w


@pytest.mark.parametrize(
    "change,needles",
    [
        (np.zeros_like, ["transform_matrix is all zeros", "rigid camera-to-world"]),
        (_scaled, ["transform_matrix has a rotation part that is not orthonormal"]),
        (_mirrored, ["transform_matrix has a rotation part with determinant -1"]),
        (_last_row, ["transform_matrix has last row [0.0, 0.0, 1.0, 1.0]"]),
        (_at_origin, ["transform_matrix puts the camera at [0.0, 0.0, 0.0]", "inside the object's box"]),
        (_in_box, ["inside the object's box [-0.5, 0.5]^3"]),
    ],
)
def test_bad_matrix_refused(dataset, change, needles):
    _set_matrix(dataset, 2, change)
    _refused(dataset, "frame 2 (images/002.png)", *needles)


def test_read_transforms_allows_a_camera_at_the_origin(dataset):
    """Any nerfstudio folder (a room scan) may have one: only recon, whose object sits there, refuses it."""
    _set_matrix(dataset, 1, _at_origin)
    _, frames = read_transforms(dataset / "transforms.json")
    assert np.allclose(frames[1].c2w[:3, 3], 0.0)


def test_slightly_imprecise_matrix_loads(dataset):
    _set_matrix(dataset, 1, lambda c2w: np.round(c2w, 5))  # a matrix written with 5 decimals
    assert len(load_views(dataset)) == 3


# ------------------------------------------------------------------------------------------------ FOLDER


@pytest.mark.parametrize(
    "name,needles",
    [
        ("photo.png", ["is an image, not a folder", "transforms.json and its images", "svd3d orbit"]),
        ("data/transforms.json", ["is a file", "pass its folder"]),
        ("notes.txt", ["is a file, not a folder"]),
        ("nope", ["does not exist"]),
    ],
)
def test_folder_must_be_a_folder(dataset, name, needles):
    path = dataset.parent / name
    if name == "photo.png":
        _object_image().save(path)
    elif name == "notes.txt":
        path.write_text("hello\n")
    with pytest.raises(SVD3DError) as info:
        check_folder(path)
    for needle in needles:
        assert needle in str(info.value), info.value
    assert " -o" not in str(info.value)  # the user gave no -o
    with pytest.raises(SVD3DError):
        load_views(path)


def test_cli_recon_of_an_image_suggests_orbit(tmp_path):
    photo = tmp_path / "photo.png"
    _object_image().save(photo)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["recon", str(photo), "--method", "hull", "-o", str(out)], catch_exceptions=False)
    assert r.exit_code == 2, r.output
    assert f"svd3d orbit {photo}" in r.output and not out.exists()


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_refuses_zero_focal_length_and_writes_nothing(dataset, tmp_path):
    _edit(dataset, lambda d: d.update(fl_x=0))
    before = sorted(p.name for p in dataset.iterdir())
    out = tmp_path / "out"
    runner = CliRunner()
    r = runner.invoke(main, ["recon", str(dataset), "--method", "hull"], catch_exceptions=False)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "fl_x is 0" in lines[0], r.output
    assert sorted(p.name for p in dataset.iterdir()) == before  # no mesh.glb, recon.json, preview.png
    r = runner.invoke(main, ["recon", str(dataset), "--method", "hull", "-o", str(out)], catch_exceptions=False)
    assert r.exit_code == 2 and "fl_x is 0" in r.output and not out.exists()


def test_cli_refuses_outside_path_and_writes_nothing(dataset):
    _edit(dataset, lambda d: d["frames"][1].update(file_path="../outside.png"))
    r = CliRunner().invoke(main, ["recon", str(dataset), "--method", "hull"], catch_exceptions=False)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "frame 1" in lines[0] and "outside the dataset folder" in lines[0], r.output
    assert not (dataset / "mesh.glb").exists() and not (dataset / "recon.json").exists()


def test_cli_recon_of_an_image_without_output(tmp_path):
    photo = tmp_path / "photo.png"
    _object_image().save(photo)
    r = CliRunner().invoke(main, ["recon", str(photo), "--method", "hull"], catch_exceptions=False)
    assert r.exit_code == 2 and f"svd3d orbit {photo}" in r.output
    assert "-o" not in r.output.replace(str(photo), "PHOTO")  # no word of an -o the user did not give
