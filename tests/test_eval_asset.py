"""`svd3d eval asset`: the held-out object is the procedural dataset's own sample, the table and JSON hold finite
numbers for every method, and the ground-truth-render ceiling lands on the true mesh (a frame mix-up fails)."""

from __future__ import annotations

import functools
import importlib.util
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from svd3d.cli import main
from svd3d.errors import SVD3DError
from svd3d.eval.asset import LABELS, METHODS, evaluate_asset, family_objects, held_out_object

needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason='matplotlib is not installed (pip install -e ".[plot]")'
)


def test_held_out_object_is_the_datasets_sample():
    from svd3d.training.data import RenderOrbitSettings
    from svd3d.training.procedural import procedural_orbit_dataset

    data = procedural_orbit_dataset(2, settings=RenderOrbitSettings(size=32, frames=5), seed=777)
    for orbit, k in (("static", 0), ("dynamic", 1)):
        obj = held_out_object(777, 1, 32, 5, orbit)
        sample = 2 + k  # object 1's static then dynamic sample
        assert obj.name == data.names[sample]
        np.testing.assert_array_equal(obj.frames, data.frames[sample])
        np.testing.assert_allclose(obj.elevations, data.elevations[sample], atol=1e-4)
        np.testing.assert_allclose(obj.azimuths, data.azimuths[sample], atol=1e-4)


def test_true_mesh_is_in_the_orbits_frame():
    """The turned mesh renders to the dataset's input view at the orbit's first camera."""
    from svd3d.render import render_views

    obj = held_out_object(777, 0, 32, 5, "static")
    again = render_views(obj.mesh, obj.elevations[:1], obj.azimuths[:1], 32, light="headlight", supersample=3)
    np.testing.assert_array_equal(again.rgba[0, ..., :3], obj.frames[0])


def test_held_out_family_object_is_the_family_sample_with_its_mesh_in_the_orbits_frame():
    """--family held-out: the input view is the preprocessed picture `svd3d eval orbit --family held-out` makes,
    the other frames its truth, and the true mesh is the framed one those renders show (a frame or scale mix-up
    fails the silhouettes)."""
    from svd3d.eval.family import family_samples
    from svd3d.render import render_views

    obj = list(family_objects("held-out", 777, 2, 32, 5, "dynamic"))[1]
    sample = list(family_samples("held-out", 2, size=32, views=5, seed=777))[3]  # object 1: static, then dynamic
    assert obj.name == sample.name == "held-000001#dynamic"
    np.testing.assert_array_equal(obj.frames[0], np.asarray(sample.prepared.image.convert("RGB")))
    np.testing.assert_array_equal(obj.frames[1:], sample.truth[1:, ..., :3])
    again = render_views(obj.mesh, obj.elevations, obj.azimuths, 32, supersample=3).rgba[..., 3] >= 128
    truth = sample.truth[..., 3] >= 128
    iou = (again & truth).sum((1, 2)) / (again | truth).sum((1, 2))
    assert iou.min() > 0.97, iou
    with pytest.raises(SVD3DError, match="family"):
        evaluate_asset(objects=1, family="bench", device="cpu", progress=False)


@pytest.fixture(scope="module")
def one_object():
    """One object, 2 steps of a random orbit model, and a one-stage coarse field: `svd3d recon`'s default field
    takes minutes on a small CPU, and this checks the evaluation's plumbing and frames, not the field's quality."""
    import svd3d.recon.field as field_module
    from svd3d.models.tiny import tiny_random_model

    with pytest.MonkeyPatch.context() as patch:
        coarse = functools.partial(field_module.FieldSettings, voxels=(48,), image_sizes=(64,), iterations=(60,))
        patch.setattr(field_module, "FieldSettings", coarse)
        model = tiny_random_model("orbit", seed=0)
        return evaluate_asset(model, objects=1, steps=2, device="cpu", progress=False)


def test_table_and_json(one_object, tmp_path):
    result = one_object
    table = result.table()
    for method in METHODS:
        assert f"| {LABELS[method]} |" in table
    assert "| generated − GT views (field) |" in table
    assert "field beats hull on " in table and " of 1 objects (Chamfer)" in table
    metrics = list(result.mean("field-gt"))
    assert metrics == ["chamfer", "f_score", "volume_iou", "normal_consistency"]
    for method in METHODS:
        if result.failed(method) == 0:
            assert all(math.isfinite(v) for v in result.mean(method).values()), (method, result.mean(method))
    assert result.failed("field-gt") == 0  # ground-truth renders always reconstruct
    out = tmp_path / "asset.json"
    result.write_json(out)
    data = json.loads(out.read_text())
    assert data["written_by"] == "svd3d eval asset"
    assert data["settings"]["objects"] == 1 and data["settings"]["steps"] == 2
    assert set(data["mean"]) == set(METHODS)
    assert data["objects"][0]["name"] == "proc-000000#dynamic"  # the orbit svd3d orbit meshes, for a camera model
    assert set(data["objects"][0]["seconds"]) == {"generate", *METHODS}


@needs_matplotlib
def test_plot_of_each_objects_meshes(one_object, tmp_path):
    from PIL import Image

    from svd3d.eval.plots import COLOURS, DPI, PANEL_SIZE

    panels = one_object.plot_panels()
    assert [p.title for p in panels] == ["Chamfer ↓", "volume IoU ↑", "normal cons. ↑"]
    field_gt = one_object.objects[0].scores["field-gt"]
    assert panels[0].groups == ["proc-000000"] and panels[0].bars["field-gt"] == [pytest.approx(field_gt.chamfer)]
    plot = one_object.write_plot(tmp_path / "meshes.png")
    with Image.open(plot) as img:
        assert img.size == (3 * PANEL_SIZE[0] * DPI, PANEL_SIZE[1] * DPI)
        pixels = np.asarray(img.convert("RGB")).astype(int)
    rgb = np.array([int(COLOURS["field-gt"][i : i + 2], 16) for i in (1, 3, 5)])
    assert (np.abs(pixels - rgb).sum(-1) < 40).mean() > 0.002  # the ceiling's bars, in its colour


def test_ground_truth_ceiling_is_close(one_object):
    """The field on ground-truth renders must land on the true mesh: wrong cameras, scale or turn would not."""
    scores = one_object.objects[0].scores["field-gt"]
    assert scores.chamfer < 0.05, scores
    assert scores.volume_iou > 0.5, scores


def test_cli_refuses_foreign_json_before_work(tmp_path):
    foreign = tmp_path / "mine.json"
    foreign.write_text("{}")
    result = CliRunner().invoke(main, ["eval", "asset", "--model", "random-tiny-orbit", "--json", str(foreign)])
    assert result.exit_code == 2
    assert "svd3d did not write it" in result.output
    assert foreign.read_text() == "{}"


def test_bad_orbit_is_refused():
    result = CliRunner().invoke(main, ["eval", "asset", "--orbit", "sideways"])
    assert result.exit_code == 2
    assert "sideways" in result.output
