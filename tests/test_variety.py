"""Training data with variety: the renderer's camera-fixed lights, intensity and glossy materials; the procedural
generator's kinds (primitives, thin parts, deformations, patterns, colours, part counts), lights, materials and
input framing, seeded and really drawn; tiny-orbit's data left as it was; the held-out family's kinds never in
training, by construction; recipes and `svd3d data` choosing them."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import trimesh
from click.testing import CliRunner

from svd3d.cli import main
from svd3d.errors import SVD3DError
from svd3d.image import mask_bbox
from svd3d.render import HEADLIGHT, HeadLight, Material, render_views
from svd3d.segment import prepare_object
from svd3d.training.data import OrbitLook, RenderOrbitSettings
from svd3d.training.meshes import (
    HELD_OUT_LIGHT_AZIMUTH,
    TRAIN_LIGHT_AZIMUTH,
    TRAIN_LIGHT_ELEVATION,
    draw_lighting,
    draw_material,
    frame_input_view,
    head_light,
    light_angles,
    object_rng,
    render_object_orbits,
)
from svd3d.training.procedural import (
    DEFORMATIONS,
    HELD_OUT_PRIMITIVES,
    TRAIN_PATTERNS,
    TRAIN_PRIMITIVES,
    ProceduralSettings,
    held_out_object,
    is_held_out_colour,
    procedural_orbit_dataset,
    random_object,
)
from svd3d.training.recipe import load_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
VARIED = RenderOrbitSettings(size=16, frames=3, light="varied", material="varied", framing="input",
                             object_fraction=(0.7, 0.9))  # fmt: skip


def _ball():
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    mesh.visual.face_colors = (180, 60, 40, 255)
    return mesh


# ------------------------------------------------------------------------------------------------ renderer


def test_camera_fixed_lights_intensity_and_gloss():
    ball, views = _ball(), ([10.0], [0.0])
    default = render_views(ball, *views, 32).rgba
    lit = default[..., :3].astype(float)
    assert np.array_equal(default, render_views(ball, *views, 32, light=HeadLight()).rgba)
    assert np.array_equal(default, render_views(ball, *views, 32, intensity=1.0, material=Material()).rgba)

    def side_brightness(light):  # mean of the left and of the right half of the ball
        rgb = render_views(ball, *views, 32, light=light).rgba[0, 8:24, :, 0].astype(float)
        return rgb[:, 4:16].mean(), rgb[:, 16:28].mean()

    left, right = side_brightness(head_light(-60, 10)), side_brightness(head_light(60, 10))
    assert left[0] > left[1] + 10 and right[1] > right[0] + 10  # lit from where the light is
    assert np.allclose(light_angles(head_light(-19.3, 23.8)), (-19.3, 23.8))
    assert np.allclose(light_angles(HeadLight(HEADLIGHT)), (-19.29, 23.01), atol=0.01)

    dim = render_views(ball, *views, 32, intensity=0.5).rgba[..., :3].astype(float)
    glossy = render_views(ball, *views, 32, material=Material(0.6, 16)).rgba[..., :3].astype(float)
    assert dim.mean() < lit.mean() - 5
    # a white highlight: the brightest pixel turns towards white in every channel, the rest barely changes
    inside = default[..., 3] == 255
    assert glossy[..., 1][inside].max() > lit[..., 1][inside].max() + 80 and np.median(glossy - lit) < 5
    with pytest.raises(SVD3DError, match="specular in"):
        render_views(ball, *views, 16, material=Material(2.0))
    with pytest.raises(SVD3DError, match="intensity must be"):
        render_views(ball, *views, 16, intensity=-1)


# ------------------------------------------------------------------------------------------------ procedural


def test_tiny_orbit_data_is_unchanged():
    """The recipe's path to the generator gives exactly the old defaults: no variety drawn, nothing recorded."""
    recipe = load_recipe(RECIPES / "tiny-orbit.toml")
    look = {f.name: getattr(recipe.data.render, f.name) for f in fields(recipe.data.render)}
    assert RenderOrbitSettings(size=64, frames=21, **look) == RenderOrbitSettings()
    assert recipe.data.procedural == ProceduralSettings() and RenderOrbitSettings().is_default()
    data = procedural_orbit_dataset(1, settings=RenderOrbitSettings(size=16, frames=3), seed=1)
    assert set(data.source) == {"generator", "settings", "seed", "count"}
    assert data.source["settings"]["light"] == "headlight" and data.source["settings"]["fit_to"] == "sphere"
    a, b = random_object(object_rng(1, 4)), random_object(object_rng(1, 4), ProceduralSettings())
    np.testing.assert_array_equal(a.vertices, b.vertices)


def test_variety_is_seeded():
    a, b = (procedural_orbit_dataset(2, settings=VARIED, generator=ProceduralSettings.varied(), seed=4)
            for _ in range(2))  # fmt: skip
    c = procedural_orbit_dataset(2, settings=VARIED, generator=ProceduralSettings.varied(), seed=5)
    for name in ("frames", "masks", "elevations", "azimuths"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.source == b.source and a.source["objects"] != c.source["objects"]
    assert not np.array_equal(a.frames, c.frames)


def test_every_kind_is_drawn():
    made = [random_object(object_rng(5, i), ProceduralSettings.varied()).metadata["svd3d_procedural"]
            for i in range(40)]  # fmt: skip
    assert {k for m in made for k in m["primitives"]} == set(TRAIN_PRIMITIVES)
    assert {p for m in made for p in m["patterns"]} == set(TRAIN_PATTERNS)
    assert {d for m in made for d in m["deformations"]} == {"", *DEFORMATIONS}
    assert {m["parts"] for m in made} == {1, 2, 3, 4, 5, 6}

    rng = np.random.default_rng(0)
    angles = np.array([light_angles(draw_lighting(rng).light) for _ in range(300)])  # (300, 2) degrees
    for column, (lo, hi) in ((0, TRAIN_LIGHT_AZIMUTH), (1, TRAIN_LIGHT_ELEVATION)):
        assert angles[:, column].min() >= lo - 1e-6 and angles[:, column].max() <= hi + 1e-6
        assert np.ptp(angles[:, column]) > 0.9 * (hi - lo)  # spread over the whole range
    glossy = [draw_material(rng).specular > 0 for _ in range(200)]
    assert 0.35 < np.mean(glossy) < 0.65


def test_held_out_kinds_are_never_in_training():
    # a training set with every kind of variety records what each object was made of and how it was lit: none of it
    # is held out
    data = procedural_orbit_dataset(12, settings=VARIED, generator=ProceduralSettings.varied(), seed=8)
    kinds = {k for o in data.source["objects"] for k in o["primitives"]}
    assert kinds <= set(TRAIN_PRIMITIVES) and not kinds & set(HELD_OUT_PRIMITIVES)
    azimuths = [light_angles(HeadLight(tuple(orbit["light"]["head"])))[0]
                for o in data.source["objects"] for orbit in o["orbits"]]  # fmt: skip
    assert max(azimuths) < HELD_OUT_LIGHT_AZIMUTH[0] and TRAIN_LIGHT_AZIMUTH[1] < HELD_OUT_LIGHT_AZIMUTH[0]
    for settings in (ProceduralSettings(), ProceduralSettings.varied(), ProceduralSettings(colours="random")):
        for i in range(25):
            colours = np.asarray(random_object(object_rng(9, i), settings).visual.face_colors)[:, :3]
            assert not is_held_out_colour(colours).any()
    # the held-out family has them, always
    for i in range(6):
        mesh = held_out_object(object_rng(777, i))
        assert set(mesh.metadata["svd3d_procedural"]["primitives"]) & set(HELD_OUT_PRIMITIVES)
        assert is_held_out_colour(np.asarray(mesh.visual.face_colors)[:, :3]).all()
    # and no setting can ask training for them
    with pytest.raises(SVD3DError, match="primitive 'star' is held out of training"):
        random_object(object_rng(0, 0), ProceduralSettings(primitives=("box", "star")))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (ProceduralSettings(primitives=("blob",)), "unknown primitive 'blob'"),
        (ProceduralSettings(primitives=()), "primitives must be distinct and not empty"),
        (ProceduralSettings(patterns=("flat", "two_tone")), "need one of stripes, checker, dots"),
        (ProceduralSettings(colours="pastel"), "colours must be one of palette, random, mixed"),
        (ProceduralSettings(max_parts=7), "max_parts must be a whole number from 1 to 6"),
        (ProceduralSettings(deform=1.5), "deform must be a chance from 0 to 1"),
        (RenderOrbitSettings(light="sun"), "light must be one of headlight, varied"),
        (RenderOrbitSettings(framing="tight"), "framing must be one of sphere, input"),
        (RenderOrbitSettings(object_fraction=(0.9, 0.7)), "object_fraction must satisfy"),
    ],
)
def test_bad_variety_settings(settings, message):
    with pytest.raises(SVD3DError, match=message):
        settings.check()


def test_input_framing_frames_the_input_view_as_svd3d_orbit_does():
    mesh = random_object(object_rng(3, 2), ProceduralSettings.varied())
    for elevation, fraction in ((25.0, 0.85), (-5.0, 0.7)):
        framed, scale = frame_input_view(mesh, elevation, fraction)
        view = render_views(framed, [elevation], [0.0], 128).rgba[0]
        left, top, right, bottom = mask_bbox(view[..., 3] >= 128)
        side = max(right - left, bottom - top)
        assert abs(side - fraction * 128) <= 2.5, (side, fraction * 128)
        assert abs((left + right) / 2 - 64) <= 1.5 and abs((top + bottom) / 2 - 64) <= 1.5
        # the same framing svd3d orbit's preprocessing gives the unframed render
        from PIL import Image

        plain = Image.fromarray(render_views(mesh, [elevation], [0.0], 128).rgba[0], "RGBA")
        prepared = np.asarray(prepare_object(plain, 128, fraction).image, float)
        assert np.abs(prepared - view[..., :3]).mean() < 6.0
        assert scale > 0.99 or fraction < 0.85  # at 0.85 the sphere fit leaves a margin the framing takes up
    out = render_object_orbits(mesh, object_rng(3, 7), VARIED.check())
    assert [round(o["scale"], 2) > 0 for o in out["looks"]] == [True, True]
    assert all(set(o) == {"light", "ambient", "intensity", "specular", "shininess", "scale"} for o in out["looks"])


# ------------------------------------------------------------------------------------------------ recipes, CLI


def test_variety_recipe_and_its_checks(tmp_path):
    recipe = load_recipe(RECIPES / "tiny-orbit-variety.toml")
    assert recipe.data.render.framing == "input" and set(recipe.data.procedural.primitives) == set(TRAIN_PRIMITIVES)
    assert recipe.model.init == "tiny-orbit"
    bad = {
        "[data]\ngenerate = 'procedural'\n[data.procedural]\nprimitives = ['box', 'trefoil']\n": "is held out of",
        "[data]\ngenerate = 'procedural'\n[data.render]\nlightt = 'varied'\n": "unknown key(s) 'lightt' in [data.render]",
        "[data]\npath = 'x'\n[data.render]\nlight = 'varied'\n": "choose them when building it",
        "[data]\ngenerate = 'procedural'\n[data.render]\nobject_fraction = [0.2, 0.9]\n": "data.render: object_fraction",
    }
    for text, message in bad.items():
        (tmp_path / "r.toml").write_text(text)
        with pytest.raises(SVD3DError, match=re.escape(message)):
            load_recipe(tmp_path / "r.toml")
    assert OrbitLook() == load_recipe(RECIPES / "debug.toml").data.render


def test_svd3d_data_variety_options(tmp_path):
    def run(*args):
        return CliRunner().invoke(main, ["data", *args], catch_exceptions=False)

    r = run("procedural", "-o", str(tmp_path / "v"), "--count", "2", "--size", "16", "--frames", "3", "--shapes",
            "varied", "--light", "varied", "--framing", "input", "--object-fraction", "0.7,0.8")  # fmt: skip
    assert r.exit_code == 0, r.output
    source = json.loads((tmp_path / "v" / "manifest.json").read_text())["source"]
    assert source["settings"]["light"] == "varied" and source["settings"]["object_fraction"] == [0.7, 0.8]
    assert source["procedural"]["max_parts"] == 6 and len(source["objects"]) == 2
    for args, message in [
        (("clips", "-o", str(tmp_path / "c"), "--count", "2", "--light", "varied"), "are for orbit datasets"),
        (("meshes", str(tmp_path), "-o", str(tmp_path / "m"), "--shapes", "varied"), "--shapes is for procedural"),
        (("procedural", "-o", str(tmp_path / "p"), "--count", "1", "--object-fraction", "0.8"), "two comma-separated"),
    ]:
        r = run(*args)
        assert r.exit_code == 2 and message in r.output, r.output
        assert not (tmp_path / args[2]).exists() if args[0] == "clips" else True
