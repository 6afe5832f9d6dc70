"""`svd3d recon`: end to end on renders of a known mesh, the direction check, and every bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import trimesh
from click.testing import CliRunner
from PIL import Image

from svd3d.cameras import CameraFrame, Intrinsics, StaticOrbit, orbit_c2w, read_transforms, write_transforms
from svd3d.cli import main
from svd3d.errors import SVD3DError
from svd3d.recon.mesh import faces_for_views
from svd3d.recon.pipeline import check_direction, reconstruct
from svd3d.recon.texture import texture_for_views
from svd3d.recon.views import load_views
from svd3d.render import render_to_folder


def l_shape() -> trimesh.Trimesh:
    """An asymmetric L: mirroring the azimuths changes its silhouettes."""
    a = trimesh.creation.box((0.6, 0.2, 0.2))
    b = trimesh.creation.box((0.2, 0.5, 0.2))
    b.apply_translation((0.2, 0.15, 0.0))
    c = trimesh.creation.box((0.2, 0.2, 0.4))
    c.apply_translation((-0.2, 0.0, 0.1))
    return trimesh.util.concatenate([a, b, c])


@pytest.fixture(scope="module")
def views_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("views") / "l"
    render_to_folder(l_shape(), StaticOrbit(20, 12).angles(), folder, 96, supersample=1)
    return folder


def run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_recon_hull_writes_textured_glb(views_dir, tmp_path):
    out = tmp_path / "out"
    r = run(["recon", str(views_dir), "--method", "hull", "--texture", "256", "--format", "glb,obj", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert {"mesh.glb", "mesh.obj", "preview.png", "recon.json"} <= {p.name for p in out.iterdir()}
    loaded = trimesh.load(out / "mesh.glb", force="mesh")
    assert loaded.visual.kind == "texture" and loaded.visual.uv is not None
    assert loaded.visual.material.baseColorTexture is not None
    report = json.loads((out / "recon.json").read_text())
    assert report["quality"]["silhouette_iou_mean"] > 0.85
    assert report["direction_check"]["checked"] and not report["direction_check"]["mirrored"]
    assert {"hull", "fit", "cleanup", "texture", "export"} <= set(report["timings_s"])
    assert report["mesh"]["texture"] == 256 and report["settings"]["texture"] == 256


def test_auto_texture_holds_what_the_views_hold(views_dir, tmp_path):
    """--texture auto (the default): 8 texels per view pixel as a power of two, up to 1024."""
    assert [texture_for_views(s) for s in (4, 16, 64, 96, 128, 576, 2048)] == [64, 128, 512, 1024, 1024, 1024, 1024]
    result = reconstruct(views_dir, method="hull", faces=1000, output=tmp_path, progress=False)  # 96 px views
    assert result.report["settings"]["texture"] == "auto" and result.report["mesh"]["texture"] == 1024
    image = trimesh.load(tmp_path / "mesh.glb", force="mesh").visual.material.baseColorTexture
    assert image.size == (1024, 1024)


def test_recon_vertex_colours_and_height(views_dir, tmp_path):
    result = reconstruct(views_dir, method="hull", uv=False, formats="ply", height=1.7, output=tmp_path, progress=False)
    loaded = trimesh.load(tmp_path / "mesh.ply")
    assert loaded.visual.kind == "vertex"
    assert abs(loaded.extents[1] - 1.7) < 0.02
    assert result.report["mesh"]["uv"] is False
    # --faces auto (the default): 96 px views hold 18000 faces, not the default budget's 20000
    assert result.report["settings"]["faces"] == "auto" and 17000 < result.report["mesh"]["faces"] <= 18000


def test_auto_faces_hold_what_the_views_hold():
    """Two triangles per view pixel, rounded to a thousand, from the mobile budget (5000) to the default (20000)."""
    assert [faces_for_views(s) for s in (16, 50, 64, 96, 100, 576)] == [5000, 5000, 8000, 18000, 20000, 20000]


def test_direction_check_flips_mirrored_cameras(views_dir, tmp_path):
    intr, frames = read_transforms(views_dir / "transforms.json")
    elev = np.array([f.elevation for f in frames])
    azim = np.array([f.azimuth for f in frames])
    mirrored = orbit_c2w(elev, -azim)
    bad = [CameraFrame(f.file_path, c, e, -a) for f, c, e, a in zip(frames, mirrored, elev, azim, strict=True)]
    folder = views_dir.parent / "mirrored"
    shutil.copytree(views_dir / "images", folder / "images", dirs_exist_ok=True)  # image paths stay inside a folder
    write_transforms(folder / "transforms.json", bad, intr)
    report = check_direction(load_views(folder))
    assert report["mirrored"] and report["mean_iou"]["mirrored"] > report["mean_iou"]["as given"] + 0.05
    assert not check_direction(load_views(views_dir))["mirrored"]


def _folder(tmp_path, images, c2w=None, size=(32, 32)):
    intr = Intrinsics.from_fov(*size)
    n = len(images)
    elev, azim = StaticOrbit(10, max(n, 1)).angles()
    c2w = orbit_c2w(elev, azim) if c2w is None else c2w
    (tmp_path / "images").mkdir(exist_ok=True)
    frames = []
    for i, img in enumerate(images):
        img.save(tmp_path / "images" / f"{i:03d}.png")
        frames.append(CameraFrame(f"images/{i:03d}.png", c2w[i]))
    write_transforms(tmp_path / "transforms.json", frames, intr)
    return tmp_path


def _object_image(size=(32, 32)):
    img = Image.new("RGB", size, (255, 255, 255))
    img.paste((200, 30, 30), (10, 10, 22, 22))
    return img


@pytest.mark.parametrize(
    "case,needle",
    [
        ("no_transforms", "transforms.json"),
        ("mismatched", "must have the size"),
        ("all_white", "no foreground"),
        ("one_white", "no foreground in view"),
        ("single", "at least 2"),
        ("nan_pose", "transform_matrix"),
        ("missing_image", "does not exist"),
    ],
)
def test_recon_bad_input(tmp_path, case, needle):
    folder = tmp_path / "in"
    folder.mkdir()
    if case == "no_transforms":
        pass
    elif case == "mismatched":
        _folder(folder, [_object_image(), _object_image((40, 32))])
    elif case == "all_white":
        _folder(folder, [Image.new("RGB", (32, 32), "white")] * 3)
    elif case == "one_white":
        _folder(folder, [_object_image(), Image.new("RGB", (32, 32), "white"), _object_image()])
    elif case == "single":
        _folder(folder, [_object_image()])
    elif case == "nan_pose":
        c2w = orbit_c2w([10, 10], [0, 90])
        c2w[1, 0, 3] = np.nan
        _folder(folder, [_object_image(), _object_image()], c2w=c2w)
    elif case == "missing_image":
        _folder(folder, [_object_image(), _object_image()])
        (folder / "images" / "001.png").unlink()
    r = run(["recon", str(folder), "--method", "hull"])
    assert r.exit_code == 2 and needle in r.output, r.output
    assert not (folder / "mesh.glb").exists() and not (folder / "recon.json").exists()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--format", "fbx"], "--format"),
        (["--faces", "tiny"], "--faces"),
        (["--faces", "2"], ">= 4"),
        (["--texture", "1000"], "power of two"),
        (["--texture", "big"], "auto or a power of two"),
        (["--height", "-1"], "--height"),
    ],
)
def test_recon_bad_options(views_dir, tmp_path, args, needle):
    r = run(["recon", str(views_dir), "--method", "hull", "-o", str(tmp_path / "o"), *args])
    assert r.exit_code == 2 and needle in r.output, r.output
    assert not (tmp_path / "o").exists()


def test_orbit_makes_a_mesh_by_default(tmp_path):
    from PIL import ImageDraw

    photo = tmp_path / "box.png"
    img = Image.new("RGB", (120, 90), (150, 150, 150))
    ImageDraw.Draw(img).rectangle([40, 25, 85, 70], fill=(200, 40, 30))
    img.save(photo)
    out = tmp_path / "o"
    args = ["orbit", str(photo), "--model", "random-tiny-orbit", "--frames", "6", "--steps", "1"]
    r = run([*args, "--method", "hull", "--texture", "128", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "mesh.glb").is_file() and (out / "recon.json").is_file()


def test_reconstruct_rejects_unknown_method(views_dir):
    with pytest.raises(SVD3DError, match="unknown method"):
        reconstruct(views_dir, method="poisson")


def test_nerfacto_on_cpu_needs_iterations(views_dir, tmp_path):
    r = run(["recon", str(views_dir), "--method", "nerfacto", "--device", "cpu", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--iterations" in r.output
    assert not (tmp_path / "o").exists()


def test_nerfacto_without_nerfstudio_names_the_install(views_dir, tmp_path):
    pytest.importorskip("torch")
    try:
        import nerfstudio  # noqa: F401

        pytest.skip("nerfstudio is installed here; .ci/nerfstudio_check covers the backend")
    except ImportError:
        pass
    args = ["recon", str(views_dir), "--method", "nerfacto", "--device", "cpu", "--iterations", "2"]
    r = run([*args, "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "svd3d[nerfstudio]" in r.output
