"""`svd3d video` end to end on a tiny random model: outputs, run.json, reproducibility, defaults."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_test_image

from svd3d.cli import main
from svd3d.pipelines.video import generate_video


def test_cli_writes_playable_mp4_and_run_json(tmp_path, image_file):
    import imageio.v3 as iio

    out = tmp_path / "clips" / "clip.mp4"
    args = ["video", str(image_file), "--model", "random-tiny-video", "--frames", "6", "--steps", "2"]
    r = CliRunner().invoke(main, [*args, "--seed", "5", "--fps", "9", "-o", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    back = np.stack(list(iio.imiter(out)))
    assert back.shape == (6, 64, 64, 3)
    run = json.loads((tmp_path / "clips" / "clip.run.json").read_text())
    assert run["settings"]["seed"] == 5 and run["settings"]["fps"] == 9 and run["settings"]["num_steps"] == 2
    assert run["model"]["source"] == "random-tiny-video" and run["versions"]["torch"]
    assert set(run["timings_s"]) >= {"load", "encode", "sample", "decode", "write"}
    assert len(run["input"]["sha256"]) == 64
    assert sorted(p.name for p in out.parent.iterdir()) == ["clip.mp4", "clip.run.json"]


def _clip(model, **kw):
    args = dict(model=model, frames=4, steps=3, size=(64, 64), device="cpu", dtype="float32", progress=False)
    return generate_video(make_test_image(80, 60), **{**args, **kw})


def test_seed_reproducible(tiny_video_model):
    a, b, c = (_clip(tiny_video_model, seed=s) for s in (1, 1, 2))
    assert np.array_equal(a.frames, b.frames)
    assert np.abs(a.frames - c.frames).max() > 1e-3


def test_conditioning_values_matter(tiny_video_model):
    base = _clip(tiny_video_model, seed=1)
    for kw in ({"fps": 20}, {"motion_bucket": 10}, {"noise_aug": 0.5}, {"max_guidance": 5.0}):
        assert np.abs(_clip(tiny_video_model, seed=1, **kw).frames - base.frames).max() > 1e-4, kw


def test_model_defaults_apply(tiny_video_model):
    result = generate_video(make_test_image(), model=tiny_video_model, steps=1, device="cpu", progress=False)
    info = tiny_video_model.info
    s = result.settings
    assert (s.num_frames, s.width, s.height) == (info.num_frames, info.width, info.height)
    assert (s.min_guidance, s.max_guidance, s.noise_aug, s.fps) == (1.5, 3.0, 0.02, 7)
    assert s.decode_chunk == min(info.num_frames, 14)
    assert result.frames.shape == (info.num_frames, info.height, info.width, 3)


def test_non_square_size_and_chunked_decode(tiny_video_model):
    result = _clip(tiny_video_model, size=(96, 64), decode_chunk=2, frames=5)
    assert result.frames.shape == (5, 64, 96, 3)


def test_offload_and_forward_chunking_give_the_same_clip(tiny_video_model):
    plain = _clip(tiny_video_model, seed=3)
    other = _clip(tiny_video_model, seed=3, offload=True, forward_chunking=True)
    assert np.abs(plain.frames - other.frames).max() < 1e-5


@pytest.mark.parametrize("suffix", [".gif", ".webp", ""])
def test_other_outputs(tmp_path, tiny_video_model, suffix):
    out = tmp_path / f"clip{suffix}"
    _clip(tiny_video_model, output=out)
    assert out.exists()
    run_json = out / "run.json" if suffix == "" else tmp_path / "clip.run.json"
    assert json.loads(run_json.read_text())["output"] == str(out)


def test_bfloat16_runs(tiny_video_model):
    from svd3d.models.tiny import tiny_random_model

    result = _clip(tiny_random_model("video", dtype=__import__("torch").bfloat16), dtype="bfloat16")
    assert np.isfinite(result.frames).all() and result.settings.dtype == "bfloat16"
