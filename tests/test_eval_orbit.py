"""`svd3d eval orbit`: the model against repeat-input and mean-image on a tiny orbit dataset, hand-checked
baselines, a perfect generator, the input view used as it is, and every bad input."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from click.testing import CliRunner

from svd3d.cli import main
from svd3d.errors import SVD3DError
from svd3d.eval.orbit import METHODS, evaluate_orbit, model_generator
from svd3d.image_metrics import psnr, ssim
from svd3d.training.data import ClipData, OrbitData

SIDE, T, N = 32, 5, 2
SQUARE = 8  # side of each object's square, in pixels
COLOURS = [(200, 40, 30), (30, 90, 210)]

needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason='matplotlib is not installed (pip install -e ".[plot]")'
)


def orbit_arrays(n: int = N, t: int = T, side: int = SIDE):
    """(n, t, side, side, 3) uint8: a plain square on white that moves 2 px right per view (object i starts
    at row 6 + 4 i); elevations 10, azimuths an even static orbit."""
    frames = np.full((n, t, side, side, 3), 255, np.uint8)
    for i in range(n):
        top = 6 + 4 * i
        for v in range(t):
            left = 4 + 2 * v
            frames[i, v, top : top + SQUARE, left : left + SQUARE] = COLOURS[i % len(COLOURS)]
    elevations = np.full((n, t), 10.0, np.float32)
    azimuths = np.tile(np.arange(t, dtype=np.float32) * 360.0 / t, (n, 1))
    return frames, elevations, azimuths


def write_dataset(folder, frames, elevations, azimuths, masks=None):
    """An orbit dataset folder (manifest.json + arrays), written by OrbitData."""
    names = [f"obj{i}" for i in range(len(frames))]
    return OrbitData(frames, elevations, azimuths, names, masks).save(folder)


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "orbits", *orbit_arrays())


def perfect_generator(folder):
    """A generate function that returns the ground truth of the object whose input view it is given."""
    frames = np.load(folder / "frames.npy")

    def ground_truth(view, elevations, azimuths, seed):
        (i,) = [k for k in range(len(frames)) if np.array_equal(frames[k, 0], view)]
        return frames[i].astype(np.float32) / 255.0

    return ground_truth


def test_perfect_model_and_hand_computed_baselines(dataset):
    result = evaluate_orbit(None, dataset, generate=perfect_generator(dataset), progress=False)
    frames = np.load(dataset / "frames.npy").astype(np.float64) / 255.0

    model = result.mean["model"]
    assert model.psnr == float("inf") and model.ssim == pytest.approx(1.0) and model.mask_iou == 1.0

    # repeat-input: view 0 against views 1..T-1, per object, then over objects
    repeat = np.mean([np.mean([psnr(f[0], f[v]) for v in range(1, T)]) for f in frames])
    assert result.mean["repeat-input"].psnr == pytest.approx(repeat, abs=1e-4)
    repeat_ssim = np.mean([np.mean([ssim(f[0], f[v]) for v in range(1, T)]) for f in frames])
    assert result.mean["repeat-input"].ssim == pytest.approx(repeat_ssim, abs=1e-5)
    # two squares of side 8 shifted by 2 v pixels: IoU = 8 (8 - 2v) / (128 - 8 (8 - 2v))
    ious = [(8 * (8 - 2 * v)) / (128 - 8 * (8 - 2 * v)) for v in range(1, T)]
    assert result.mean["repeat-input"].mask_iou == pytest.approx(np.mean(ious))

    # mean-image: the per-pixel mean of every scored view of both objects
    mean_image = frames[:, 1:].reshape(-1, SIDE, SIDE, 3).mean(0)
    expected = np.mean([psnr(mean_image, f[v]) for f in frames for v in range(1, T)])
    assert result.mean["mean-image"].psnr == pytest.approx(expected, abs=1e-4)
    # per-object numbers average to the mean
    per_object = [o.scores["repeat-input"].psnr for o in result.objects]
    assert [o.name for o in result.objects] == ["obj0", "obj1"]
    assert np.mean(per_object) == pytest.approx(result.mean["repeat-input"].psnr)

    margins = result.margins()
    best_iou = max(result.mean[b].mask_iou for b in ("repeat-input", "mean-image"))
    assert margins.psnr == float("inf") and margins.mask_iou == pytest.approx(1.0 - best_iou)
    table = result.table()
    for label in ("| model |", "| repeat-input |", "| mean-image |", "| model − best baseline |"):
        assert label in table, table
    assert "PSNR" in table and "SSIM" in table and "LPIPS" in table and "mask IoU" in table
    if result.lpips:  # lpips absent or its weights not cached: said in the LPIPS column, nothing downloaded
        assert result.lpips.startswith("n/a (lpips") and result.lpips in table


def test_first_k_objects_and_masks_npy(tmp_path):
    frames, elevations, azimuths = orbit_arrays()
    masks = np.full(frames.shape[:4], 255, np.uint8)  # the whole view marked as object
    folder = write_dataset(tmp_path / "masked", frames, elevations, azimuths, masks=masks)
    result = evaluate_orbit(None, folder, objects=1, generate=perfect_generator(folder), progress=False)
    assert [o.name for o in result.objects] == ["obj0"] and result.settings["gt_masks"] == "masks.npy"
    # the prediction's foreground is the square, the ground truth's the whole view
    assert result.mean["model"].mask_iou == pytest.approx(SQUARE**2 / SIDE**2)
    # the mean image is over the evaluated object only
    views = frames[0, 1:].astype(np.float64) / 255.0
    expected = np.mean([psnr(views.mean(0), v) for v in views])
    assert result.mean["mean-image"].psnr == pytest.approx(expected, abs=1e-4)


def run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_cli_random_tiny_orbit(dataset, tmp_path):
    out = tmp_path / "scores.json"
    args = ["eval", "orbit", "--model", "random-tiny-orbit", "--data", str(dataset), "--steps", "2"]
    r = run([*args, "--device", "cpu", "--json", str(out)])
    assert r.exit_code == 0, r.output
    for label in ("| model |", "| repeat-input |", "| mean-image |"):
        assert label in r.output
    scores = json.loads(out.read_text())
    assert set(scores["mean"]) == set(METHODS) and len(scores["objects"]) == N
    assert (
        scores["settings"]["steps"] == 2 and scores["settings"]["views"] == T and scores["model"] == "random-tiny-orbit"
    )
    assert np.isfinite(scores["mean"]["model"]["psnr"]) and 0 <= scores["mean"]["model"]["mask_iou"] <= 1
    assert not list(tmp_path.glob(".scores*"))  # written atomically, no temporary left


def test_generate_orbit_uses_the_input_view_as_given(tiny_orbit_model):
    from PIL import Image

    from svd3d.pipelines.orbit import generate_orbit

    frames, _, _ = orbit_arrays(n=1)
    view = Image.fromarray(frames[0, 0])
    cameras = {"elevations": [10, 25, 0], "azimuths": [0, 100, 250]}
    result = generate_orbit(
        view, model=tiny_orbit_model, steps=1, size=SIDE, preprocess=False, progress=False, **cameras
    )
    assert result.frames.shape == (3, SIDE, SIDE, 3) and result.azimuths.tolist() == [0, 100, 250]
    assert np.array_equal(np.asarray(result.input_image), frames[0, 0])  # not re-centred or resized
    assert result.run["preprocess"]["applied"] is False
    assert result.run["preprocess"]["object_fraction"] == pytest.approx(SQUARE / SIDE)
    with pytest.raises(SVD3DError, match="must be 64x64"):
        generate_orbit(view, model=tiny_orbit_model, steps=1, preprocess=False, progress=False)

    # evaluation's generator: a dataset's uneven cameras as a custom orbit, its size, its input view kept
    generate = model_generator(tiny_orbit_model, steps=1, dtype="float32", device="cpu")
    views = generate(frames[0, 0], np.array([10.0, 30.0, -5.0, 12.0]), np.array([0.0, 80.0, 170.0, 300.0]), 0)
    assert views.shape == (4, SIDE, SIDE, 3) and np.array_equal(views[0], frames[0, 0] / np.float32(255))


def bad_dataset(tmp_path, case: str):
    frames, elevations, azimuths = orbit_arrays()
    if case == "missing":
        return tmp_path / "nope"
    if case == "no-manifest":
        folder = write_dataset(tmp_path / "plain", frames, elevations, azimuths)
        (folder / "manifest.json").unlink()
        return folder
    if case == "clips":
        fps, motion = np.full(N, 7, np.float32), np.full(N, 127, np.float32)
        return ClipData(frames, fps, motion, ["a", "b"]).save(tmp_path / "clips")
    if case == "size":
        return write_dataset(tmp_path / "odd", *orbit_arrays(side=36))
    if case == "azimuths":
        return write_dataset(tmp_path / "turned", frames, elevations, azimuths[:, ::-1].copy())
    return write_dataset(tmp_path / "orbits", frames, elevations, azimuths)


@pytest.mark.parametrize(
    ("case", "extra", "needles"),
    [
        ("missing", [], ["nope", "does not exist"]),
        ("no-manifest", [], ["manifest.json", "missing"]),
        ("clips", [], ["'clip' dataset", "not 'orbit'"]),
        ("size", [], ["36x36", "multiples of 8"]),
        ("azimuths", [], ["obj0", "azimuth 0"]),
        ("ok", ["--objects", "0"], ["objects", "got 0"]),
        ("ok", ["--objects", "3"], ["--objects 3", "holds 2"]),
        ("ok", ["--steps", "-1"], ["steps", "got -1"]),
        ("ok", ["--model", "random-tiny-video"], ["random-tiny-video", "video model", "orbit model"]),
    ],
)
def test_bad_input(tmp_path, case, extra, needles):
    folder = bad_dataset(tmp_path, case)
    model = [] if "--model" in extra else ["--model", "random-tiny-orbit"]
    r = run(["eval", "orbit", *model, "--data", str(folder), "--device", "cpu", *extra])
    assert r.exit_code != 0, r.output
    message = r.output.strip().splitlines()[-1]
    assert message.startswith("error:"), message
    for needle in needles:
        assert needle.lower() in message.lower(), message


def plot_colours(path) -> tuple[tuple[int, int], np.ndarray]:
    """(size, pixels (H, W, 3) int) of a PNG plot."""
    from PIL import Image

    with Image.open(path) as img:
        return img.size, np.asarray(img.convert("RGB")).astype(int)


def near(pixels: np.ndarray, hex_colour: str) -> float:
    """The fraction of pixels within a small distance of a colour (a method's line or bars)."""
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return float((np.abs(pixels - rgb).sum(-1) < 40).mean())


@needs_matplotlib
def test_plot_of_each_views_scores_around_the_orbit(dataset, tmp_path):
    from PIL import Image

    from svd3d.eval.plots import COLOURS, DPI, PANEL_SIZE

    plot = tmp_path / "views.png"
    args = ["eval", "orbit", "--model", "random-tiny-orbit", "--data", str(dataset), "--steps", "2", "--device", "cpu"]
    r = run([*args, "--plot", str(plot), "--json", str(tmp_path / "scores.json")])
    assert r.exit_code == 0, r.output
    assert f"wrote {plot}" in r.output
    size, pixels = plot_colours(plot)
    assert size == (2 * PANEL_SIZE[0] * DPI, PANEL_SIZE[1] * DPI)  # PSNR and mask IoU side by side
    assert pixels.std() > 30 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100  # drawn, not blank
    for method in METHODS:  # each method's line is there, in its colour
        assert near(pixels, COLOURS[method]) > 0.001, method
    assert Image.open(plot).info["Software"].startswith("svd3d") and not list(tmp_path.glob(".views*"))
    # the numbers behind it: each view's scores at its azimuth, in the JSON too
    scores = json.loads((tmp_path / "scores.json").read_text())
    first = scores["objects"][0]
    assert first["azimuths"] == pytest.approx([72.0, 144.0, 216.0, 288.0]) and len(first["views"]["model"]["psnr"]) == 4
    assert np.mean(first["views"]["repeat-input"]["psnr"]) == pytest.approx(first["repeat-input"]["psnr"])
    # svd3d's own plot is replaced by the next run
    assert run([*args, "--plot", str(plot)]).exit_code == 0


def test_plot_lines_are_the_per_view_means(dataset):
    result = evaluate_orbit(None, dataset, generate=perfect_generator(dataset), progress=False)
    psnr_panel, iou_panel = result.plot_panels()
    frames = np.load(dataset / "frames.npy").astype(np.float64) / 255.0
    lines = {line.label: line for line in psnr_panel.lines}
    assert lines["model"].x.tolist() == pytest.approx([72.0, 144.0, 216.0, 288.0])
    repeat = [np.mean([psnr(f[0], f[v]) for f in frames]) for v in range(1, T)]  # view by view, over objects
    assert lines["repeat-input"].y == pytest.approx(repeat, abs=1e-4)
    # a perfect view's PSNR is inf: drawn at the ceiling, and the panel says so
    assert np.all(lines["model"].y == 60.0) and "inf drawn at 60" in psnr_panel.title
    assert {line.label: line for line in iou_panel.lines}["model"].y == pytest.approx([1.0] * (T - 1))


@needs_matplotlib
@pytest.mark.parametrize(
    "name, setup, needle",
    [
        ("plot.jpg", None, "give a .png name"),
        ("mine.png", "foreign", "svd3d did not write it"),
        ("missing/parent/plot.png", None, None),  # a new folder is fine: written, see below
        ("file.txt/plot.png", "file", "is a file, not a folder"),
    ],
)
def test_bad_plot_paths_stop_before_any_work(dataset, tmp_path, name, setup, needle):
    from PIL import Image

    path = tmp_path / name
    if setup == "foreign":
        Image.new("RGB", (4, 4), "red").save(path)  # a user's own PNG
    if setup == "file":
        (tmp_path / "file.txt").write_text("mine")
    args = ["eval", "orbit", "--model", "random-tiny-orbit", "--data", str(dataset), "--steps", "2", "--device", "cpu"]
    r = CliRunner().invoke(main, [*args, "--plot", str(path)])
    if needle is None:
        assert r.exit_code == 0 and path.is_file(), r.output
        return
    assert r.exit_code == 2 and needle in r.output and "| model |" not in r.output, r.output  # no evaluation ran
    assert len(r.output.strip().splitlines()) == 1
    if setup == "foreign":
        assert Image.open(path).size == (4, 4)  # untouched


def test_plot_without_matplotlib_says_how_to_install_it(dataset, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    r = CliRunner().invoke(main, ["eval", "orbit", "--data", str(dataset), "--plot", str(tmp_path / "p.png")])
    assert r.exit_code == 2 and 'pip install -e ".[plot]"' in r.output and len(r.output.strip().splitlines()) == 1
