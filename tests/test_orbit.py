"""`svd3d orbit` end to end: the folder, the cameras, the input view, SV3D_u / SV3D_p rules, bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import sgm_fixture
from PIL import Image, ImageDraw

from svd3d.cameras import read_transforms
from svd3d.cli import main
from svd3d.errors import SVD3DError
from svd3d.pipelines.orbit import generate_orbit


def object_photo(path, size=(120, 90)):
    """A red box on a plain grey background."""
    img = Image.new("RGB", size, (150, 150, 150))
    ImageDraw.Draw(img).rectangle([40, 25, 85, 70], fill=(200, 40, 30))
    img.save(path)
    return path


def run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_orbit_folder(tmp_path):
    photo = object_photo(tmp_path / "box.png")
    out = tmp_path / "orbit"
    args = ["orbit", str(photo), "--model", "random-tiny-orbit", "--frames", "6", "--steps", "2", "--no-mesh"]
    r = run([*args, "-o", str(out)])
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [".svd3d.json", "frames", "index.html", "input.png", "orbit.mp4", "preview.png", "run.json",
                     "transforms.json"]  # fmt: skip
    assert sorted(p.name for p in (out / "frames").iterdir()) == [f"{i:03d}.png" for i in range(6)]
    # frame 000 is the input view: exactly the conditioning image
    assert np.array_equal(np.asarray(Image.open(out / "frames/000.png")), np.asarray(Image.open(out / "input.png")))
    intr, cams = read_transforms(out / "transforms.json")
    assert intr.width == 64 and [c.file_path for c in cams] == [f"frames/{i:03d}.png" for i in range(6)]
    assert [round(c.azimuth) for c in cams] == [0, 60, 120, 180, 240, 300]
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["settings"]["orbit"] == "static" and run_json["preprocess"]["method"] in ("background", "rembg")
    assert not list(tmp_path.glob(".*tmp*"))


def test_dynamic_and_custom_orbits(tmp_path, tiny_orbit_model):
    photo = object_photo(tmp_path / "box.png")
    dyn = generate_orbit(photo, model=tiny_orbit_model, frames=5, steps=1, orbit="dynamic", progress=False)
    assert dyn.elevations[0] == 10 and len(set(np.round(dyn.elevations, 3))) > 2
    custom = generate_orbit(
        photo, model=tiny_orbit_model, steps=1, elevations=[10, 30, 0], azimuths=[240, 0, 90], progress=False
    )
    assert custom.azimuths.tolist() == [0, 90, 240] and custom.elevations.tolist() == [30, 0, 10]
    assert custom.frames.shape == (3, 64, 64, 3)
    # the input view keeps its own elevation in the cameras
    assert np.isclose(np.degrees(np.arcsin(custom.c2w[0][1, 3] / 2.0)), 30)


def test_orbit_seed_and_cameras_matter(tmp_path, tiny_orbit_model):
    photo = object_photo(tmp_path / "box.png")
    a = generate_orbit(photo, model=tiny_orbit_model, frames=4, steps=2, seed=1, progress=False)
    b = generate_orbit(photo, model=tiny_orbit_model, frames=4, steps=2, seed=1, progress=False)
    c = generate_orbit(photo, model=tiny_orbit_model, frames=4, steps=2, seed=1, elevation=40, progress=False)
    assert np.array_equal(a.frames, b.frames)
    assert np.abs(a.frames[1:] - c.frames[1:]).max() > 1e-3  # the camera reaches the views


def test_sgm_sv3d_p_fixture_writes_folder(tmp_path):
    photo = object_photo(tmp_path / "box.png")
    out = tmp_path / "fx"
    ckpt = sgm_fixture("sv3d_p.safetensors")
    r = run(["orbit", str(photo), "--model", str(ckpt), "--size", "64", "--steps", "2", "--no-mesh", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert len(list((out / "frames").iterdir())) == 21 and (out / "preview.png").is_file()


def test_sv3d_u_takes_no_camera(tmp_path):
    photo = object_photo(tmp_path / "box.png")
    with pytest.raises(SVD3DError, match="takes no camera"):
        generate_orbit(photo, model=str(sgm_fixture("sv3d_u.safetensors")), size=64, orbit="dynamic", progress=False)


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--elevations", "10,10"], "both --elevations and --azimuths"),
        (["--elevations", "10,10", "--azimuths", "0"], "one elevation per azimuth"),
        (["--elevations", "10,10", "--azimuths", "30,60"], "input view"),
        (["--elevations", "10,x"], "comma-separated"),
        (["--size", "64x32"], "square"),
        (["--size", "60"], "multiples of 8"),
        (["--frames", "0"], "--frames"),
        (["--elevation", "95"], "between -90 and 90"),
        (["--object-fraction", "1.5"], "object-fraction"),
        (["--model", "random-tiny-video"], "svd3d video"),
        (["--orbit", "dynamic", "--elevations", "0", "--azimuths", "0"], "exclude each other"),
    ],
)
def test_orbit_bad_input(tmp_path, extra, needle):
    photo = object_photo(tmp_path / "box.png")
    out = tmp_path / "o"
    args = ["orbit", str(photo), "--model", "random-tiny-orbit", "--steps", "1", "--no-mesh", "-o", str(out)]
    r = run(args + extra)
    assert r.exit_code != 0 and needle.lower() in r.output.lower(), r.output
    assert not out.exists() and not list(tmp_path.glob(".*tmp*"))


def test_orbit_never_replaces_foreign_folder(tmp_path):
    photo = object_photo(tmp_path / "box.png")
    out = tmp_path / "docs"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    r = run(["orbit", str(photo), "--model", "random-tiny-orbit", "--steps", "1", "--no-mesh", "-o", str(out)])
    assert r.exit_code != 0 and "svd3d did not write" in r.output
    assert (out / "notes.txt").read_text() == "keep"
    shutil.rmtree(out)
