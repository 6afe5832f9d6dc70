"""`svd3d eval video`: hand-checked baselines, the clip's own fps / motion bucket / seed reach the sampler, the
CLI table and JSON, and bad input."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from click.testing import CliRunner

from svd3d.cli import main
from svd3d.errors import SVD3DError
from svd3d.eval.video import evaluate_video
from svd3d.image_metrics import psnr
from svd3d.training.data import ClipData, motion_bucket

SIDE, T = 32, 4

needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason='matplotlib is not installed (pip install -e ".[plot]")'
)


def clips(n: int = 2, t: int = T) -> ClipData:
    """n clips of a square sliding right 3 px per frame on grey, with different fps and motion buckets."""
    frames = np.full((n, t, SIDE, SIDE, 3), 180, np.uint8)
    for i in range(n):
        for k in range(t):
            frames[i, k, 8 + 4 * i : 16 + 4 * i, 4 + 3 * k : 12 + 3 * k] = (200, 40 + 60 * i, 30)
    fps = np.array([6.0, 10.4][:n] + [8.0] * max(0, n - 2), np.float32)
    motion = np.array([40.0, 180.6][:n] + [100.0] * max(0, n - 2), np.float32)
    return ClipData(frames, fps, motion, [f"clip{i}" for i in range(n)])


def test_baselines_and_the_clip_conditioning(tmp_path):
    data = clips()
    result = evaluate_video("random-tiny-video", data, steps=2, seed=5, progress=False)
    real = data.frames.astype(np.float32) / 255.0
    mean_image = real[:, 1:].reshape(-1, SIDE, SIDE, 3).mean(0)
    for i, clip in enumerate(result.clips):
        want = np.mean([psnr(real[i, 0], real[i, k]) for k in range(1, T)])
        assert clip.psnr["repeat-input"] == pytest.approx(want, abs=1e-6)
        want = np.mean([psnr(mean_image, real[i, k]) for k in range(1, T)])
        assert clip.psnr["mean-image"] == pytest.approx(want, abs=1e-4)
        assert clip.motion_asked == round(float(data.motion[i]))
    # clip 1 is made with its own fps (10.4 -> 10), bucket (180.6 -> 181) and seed (5 + 1)
    from PIL import Image

    from svd3d.pipelines.video import generate_video

    again = generate_video(Image.fromarray(data.frames[1, 0]), model="random-tiny-video", frames=T, steps=2, fps=10,
                           motion_bucket=181, seed=6, size=(SIDE, SIDE), progress=False)  # fmt: skip
    assert result.clips[1].psnr["model"] == pytest.approx(
        np.mean([psnr(again.frames[k], real[1, k]) for k in range(1, T)]), abs=1e-6
    )
    assert result.clips[1].motion_made == motion_bucket(again.frames_uint8())
    assert result.motion_error == pytest.approx(np.mean([abs(c.motion_made - c.motion_asked) for c in result.clips]))


def test_cli_table_and_json(tmp_path):
    folder = clips(3).save(tmp_path / "clips")
    out = tmp_path / "eval.json"
    args = ["eval", "video", "--model", "random-tiny-video", "--data", str(folder), "--clips", "2", "--steps", "2",
            "--json", str(out)]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "| repeat-input |" in r.output and "motion bucket, made vs asked" in r.output
    record = json.loads(out.read_text())
    assert record["settings"]["clips"] == 2 and len(record["clips"]) == 2
    assert set(record["mean"]) == {"model", "repeat-input", "mean-image"}


@needs_matplotlib
def test_plot_of_each_frames_scores_and_the_motion(tmp_path):
    from PIL import Image

    from svd3d.eval.plots import DPI, PANEL_SIZE

    folder = clips(3).save(tmp_path / "clips")
    plot = tmp_path / "frames.png"
    args = ["eval", "video", "--model", "random-tiny-video", "--data", str(folder), "--steps", "2", "--device", "cpu",
            "--plot", str(plot)]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    with Image.open(plot) as img:
        assert img.size == (3 * PANEL_SIZE[0] * DPI, PANEL_SIZE[1] * DPI)  # PSNR, SSIM by frame; motion
        pixels = np.asarray(img.convert("RGB")).astype(int)
    assert pixels.std() > 30 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100


def test_plot_lines_are_the_per_frame_means():
    data = clips()
    result = evaluate_video("random-tiny-video", data, steps=2, seed=5, progress=False)
    psnr_panel, ssim_panel, motion = result.plot_panels()
    real = data.frames.astype(np.float32) / 255.0
    lines = {line.label: line for line in psnr_panel.lines}
    assert lines["repeat-input"].x.tolist() == [1, 2, 3]
    want = [np.mean([psnr(real[i, 0], real[i, k]) for i in range(2)]) for k in range(1, T)]
    assert lines["repeat-input"].y == pytest.approx(want, abs=1e-5)
    assert np.mean(lines["model"].y) == pytest.approx(result.mean("psnr", "model"), abs=1e-6)
    assert motion.x.tolist() == [c.motion_asked for c in result.clips]


@pytest.mark.parametrize(
    "kwargs, needles",
    [
        ({"model": "random-tiny-orbit"}, ["orbit model", "eval video needs a video model"]),
        ({"clips": 5}, ["--clips 5", "holds 2 clip(s)"]),
        ({"steps": 0}, ["steps must be a positive number"]),
    ],
)
def test_bad_input(kwargs, needles):
    kwargs = {"model": "random-tiny-video", **kwargs}
    with pytest.raises(SVD3DError) as err:
        evaluate_video(kwargs.pop("model"), clips(), progress=False, **kwargs)
    for needle in needles:
        assert needle in str(err.value)


def test_one_frame_clips_are_refused(tmp_path):
    with pytest.raises(SVD3DError, match="at least 2 frames"):
        evaluate_video("random-tiny-video", clips(t=1), progress=False)
