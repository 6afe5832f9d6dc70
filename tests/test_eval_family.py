"""`svd3d eval orbit --family`: the evaluation families (inputs through svd3d orbit's preprocessing, ground truth
framed the same way), the held-out family's kinds, determinism, a perfect generator through them, the side-by-side
table and JSON, and every bad input."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import trimesh
from click.testing import CliRunner

from svd3d.cli import main
from svd3d.errors import SVD3DError
from svd3d.eval.family import evaluate_families, family_dataset, mask_ceiling
from svd3d.eval.orbit import evaluate_orbit
from svd3d.render import HeadLight
from svd3d.training.meshes import HELD_OUT_LIGHT_AZIMUTH, light_angles

SIZE, VIEWS = 32, 4


@pytest.fixture(scope="module")
def mesh_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("meshes")
    box = trimesh.creation.box(extents=(0.8, 0.5, 0.3))
    box.visual.face_colors = (200, 40, 40, 255)
    box.export(folder / "box.glb")
    cone = trimesh.creation.cone(radius=0.3, height=0.7, sections=24)
    cone.visual.face_colors = (30, 90, 210, 255)
    cone.export(folder / "cone.ply")
    return folder


@pytest.mark.parametrize("family", ["procedural", "held-out", "meshes"])
def test_family_datasets(family, mesh_folder):
    meshes = mesh_folder if family == "meshes" else None
    data = family_dataset(family, 5, meshes=meshes, size=SIZE, views=VIEWS, progress=False)
    assert data.frames.shape == (5, VIEWS, SIZE, SIZE, 3) and data.masks.shape == (5, VIEWS, SIZE, SIZE)
    assert [n.split("#")[1] for n in data.names] == ["static", "dynamic", "static", "dynamic", "static"]
    assert (data.azimuths[:, 0] == 0).all() and (np.diff(data.azimuths, axis=1) > 0).all()
    # the preprocessed input shows the object centred at svd3d orbit's fraction, framed as the ground truth is
    records = data.source["samples"]
    assert min(r["input_iou"] for r in records) > 0.6 and np.mean([r["input_iou"] for r in records]) > 0.8
    for i in range(5):
        covered = data.masks[i, 0] >= 128
        rows, cols = np.nonzero(covered.any(axis=1))[0], np.nonzero(covered.any(axis=0))[0]
        side = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
        assert abs(side - 0.85 * SIZE) <= 2.0
        assert (data.frames[i, 1:][data.masks[i, 1:] == 0] == 255).all()  # the ground truth on white
    again = family_dataset(family, 5, meshes=meshes, size=SIZE, views=VIEWS, progress=False)
    np.testing.assert_array_equal(data.frames, again.frames)
    other = family_dataset(family, 5, meshes=meshes, size=SIZE, views=VIEWS, seed=1, progress=False)
    assert not np.array_equal(data.frames, other.frames)
    if family == "meshes":  # 2 meshes, 5 samples: each mesh drawn again at other cameras
        assert [n.split("#")[0] for n in data.names] == ["box", "box", "cone", "cone", "box@1"]
    if family == "held-out":  # lit from the right, which no training light comes from
        azimuths = [light_angles(HeadLight(tuple(r["light"]["light"]["head"])))[0] for r in records]
        assert min(azimuths) >= HELD_OUT_LIGHT_AZIMUTH[0]
    else:
        assert all(r["light"]["light"] == "headlight" for r in records)


def test_a_perfect_generator_on_a_family_and_the_baselines():
    data = family_dataset("held-out", 2, size=SIZE, views=VIEWS, progress=False)
    truth = {data.frames[i, 0].tobytes(): data.frames[i].astype(np.float32) / 255.0 for i in range(2)}

    def ground_truth(view, elevations, azimuths, seed):
        return truth[view.tobytes()]

    result = evaluate_orbit(None, data, generate=ground_truth, progress=False)
    assert result.mean["model"].psnr == float("inf")
    # the masks of perfect views are the truth's own foreground: what mask_ceiling measures (below 1 at soft edges)
    assert result.mean["model"].mask_iou == pytest.approx(mask_ceiling(data)) and mask_ceiling(data) > 0.85
    assert np.isfinite(result.mean["repeat-input"].psnr) and result.mean["repeat-input"].mask_iou < mask_ceiling(data)


def test_families_side_by_side(mesh_folder, tmp_path):
    out = tmp_path / "families.json"
    args = ["eval", "orbit", "--model", "random-tiny-orbit", "--family", "held-out", "--meshes", str(mesh_folder),
            "--objects", "2", "--steps", "2", "--device", "cpu", "--json", str(out)]  # fmt: skip
    plot = tmp_path / "families.png" if importlib.util.find_spec("matplotlib") else None  # the [plot] extra
    r = CliRunner().invoke(main, [*args, *(["--plot", str(plot)] if plot else [])], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    if plot is not None:  # one group of bars per set, the model's colour among them
        from PIL import Image

        from svd3d.eval.plots import COLOURS

        pixels = np.asarray(Image.open(plot).convert("RGB")).reshape(-1, 3).astype(int)
        model = np.array([int(COLOURS["model"][i : i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(pixels - model).sum(axis=1) < 30).sum() > 200 and f"wrote {plot}" in r.output
    assert "## held-out" in r.output and f"## meshes ({mesh_folder})" in r.output and "side by side" in r.output
    rows = [line for line in r.output.splitlines() if line.startswith(("| held-out |", "| meshes ("))]
    assert len(rows) == 2 and all(line.split("|")[2].strip() == "2" for line in rows)
    written = json.loads(out.read_text())
    assert set(written["sets"]) == {"held-out", f"meshes ({mesh_folder})"}
    assert 0.5 < written["input_iou"]["held-out"] <= 1.0 and "Families" in written["family_protocol"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give --data DATASET and / or --family"),
        ({"families": ["weird"]}, "unknown family 'weird'"),
        ({"families": ["meshes"]}, "--family meshes needs --meshes DIR"),
        ({"meshes": "/no/such/folder"}, "mesh folder /no/such/folder does not exist"),
        ({"families": ["held-out"], "objects": 0}, "objects must be a positive number"),
    ],
)
def test_bad_family_requests(kwargs, message):
    with pytest.raises(SVD3DError, match=message):
        evaluate_families("random-tiny-orbit", **kwargs)
    with pytest.raises(SVD3DError, match="--meshes is for --family meshes"):
        family_dataset("procedural", 2, meshes="x")
