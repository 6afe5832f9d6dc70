"""The bundled tiny models (assets/models): present, small, documented, the defaults, and actually trained: the
orbit model beats the trivial baselines on objects no training run saw, the video model starts at its input and
moves as much as it is told to."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors import safe_open

from svd3d.cli import main
from svd3d.models.registry import ASSETS, default_model, entries

NAMES = {"tiny-video": "video", "tiny-orbit": "orbit"}


def test_bundled_models_are_the_defaults():
    found = entries()
    for name, kind in NAMES.items():
        assert found[name].kind == kind and default_model(kind) == name


def test_a_bundled_models_kind_is_the_one_its_svd3d_json_records(tmp_path, monkeypatch):
    """The folder name is only the fallback for a folder without svd3d.json: an "orbit-..." folder that records a
    video model lists as video, and one without svd3d.json is guessed from its name."""
    for name, info in (("orbit-named-video", {"kind": "video"}), ("my-orbit", None), ("plain", None)):
        folder = tmp_path / name
        shutil.copytree(ASSETS / "tiny-video", folder, ignore=shutil.ignore_patterns("*.safetensors"))
        (folder / "svd3d.json").unlink()
        if info is not None:
            recorded = json.loads((ASSETS / "tiny-video" / "svd3d.json").read_text()) | info
            (folder / "svd3d.json").write_text(json.dumps(recorded))
    monkeypatch.setattr("svd3d.models.registry.ASSETS", tmp_path)
    found = entries()
    assert (found["orbit-named-video"].kind, found["my-orbit"].kind, found["plain"].kind) == ("video", "orbit", "video")


def test_bundled_models_are_small_float16_and_carry_a_model_card():
    total = 0
    for name in NAMES:
        folder = ASSETS / name
        total += sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        for weights in folder.glob("*/*.safetensors"):
            with safe_open(str(weights), "pt") as f:
                assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16"}, weights
        card = (folder / "README.md").read_text()
        for needle in ("## Training", "## Evaluation", "## Limits", "## Licence", "svd3d eval"):
            assert needle in card, (name, needle)
        record = json.loads((folder / "eval.json").read_text())
        assert record["command"] in card
    assert total <= 30e6, f"bundled models take {total / 1e6:.1f} MB; the budget is 30 MB"


@pytest.fixture(scope="module")
def unseen_objects():
    """Procedural objects from a seed no training run uses (tiny-orbit trained on seed 1), on static orbits."""
    from svd3d.training.data import RenderOrbitSettings
    from svd3d.training.procedural import procedural_orbit_dataset

    return procedural_orbit_dataset(4, settings=RenderOrbitSettings(orbits=("static",)), seed=777)


@pytest.fixture(scope="module")
def unseen_eval(unseen_objects):
    from svd3d.eval.orbit import evaluate_orbit

    result = evaluate_orbit(None, unseen_objects, progress=False)
    return result, *(result.mean[m] for m in ("model", "repeat-input", "mean-image"))


def test_tiny_orbit_beats_the_baselines_on_four_unseen_objects(unseen_eval):
    """A fast guard on 4 unseen objects: white background, silhouette and colours kept (SSIM and mask IoU far above
    the best constant image), and PSNR well above repeating the input. PSNR is only asked to beat the mean image:
    on 4 objects that baseline peeks at a small test set of small objects (14.5 dB against 13.5 on 64 samples), so
    the issue's margin is checked on a set of the evaluation's size below."""
    result, model, repeat, mean = unseen_eval
    assert model.ssim > mean.ssim + 0.05 and model.mask_iou > mean.mask_iou + 0.05, result.table()
    assert model.ssim > repeat.ssim and model.mask_iou > repeat.mask_iou, result.table()
    assert model.psnr > repeat.psnr + 1.0 and model.psnr > mean.psnr, result.table()


@pytest.mark.slow
def test_tiny_orbit_clearly_beats_the_baselines_on_64_unseen_samples():
    """The issue's target, on 64 samples as `svd3d eval orbit --objects 64` scores the held-out set, but of
    objects from a seed no run uses (32 objects, static and dynamic orbits): novel-view PSNR more than 1 dB above
    both trivial baselines, SSIM above both, mask IoU above repeat-input. About 3 minutes on 2 cores."""
    from svd3d.eval.orbit import evaluate_orbit
    from svd3d.training.procedural import procedural_orbit_dataset

    result = evaluate_orbit(None, procedural_orbit_dataset(32, seed=777), progress=False)
    model, repeat, mean = (result.mean[m] for m in ("model", "repeat-input", "mean-image"))
    assert model.psnr > max(repeat.psnr, mean.psnr) + 1.0, result.table()
    assert model.ssim > max(repeat.ssim, mean.ssim), result.table()
    assert model.mask_iou > repeat.mask_iou, result.table()


def test_tiny_video_starts_at_its_input_and_follows_the_motion_bucket():
    from PIL import Image

    from svd3d.image_metrics import psnr
    from svd3d.pipelines.video import generate_video
    from svd3d.training.data import motion_bucket

    image = Image.open(ASSETS.parents[0] / "examples" / "shapes_a.png")
    made = {}
    for bucket in (20, 220):
        clip = generate_video(image, motion_bucket=bucket, progress=False)
        made[bucket] = motion_bucket(clip.frames_uint8())
        first = np.asarray(image.convert("RGB").resize(clip.frames.shape[2:0:-1], Image.Resampling.BOX)) / 255.0
        assert psnr(clip.frames[0], first) > 20.0
    assert made[220] > made[20] + 30, made


def test_orbit_cli_default_model(tmp_path):
    out = tmp_path / "toy"
    example = ASSETS.parents[0] / "examples" / "toy_a.png"
    r = CliRunner().invoke(main, ["orbit", str(example), "--no-mesh", "-o", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    run = json.loads((out / "run.json").read_text())
    assert run["model"]["source"] == "tiny-orbit" and len(list((out / "frames").glob("*.png"))) == 21


def test_denoise_probe_tiny_orbit_uses_its_input(unseen_objects):
    """recipes/denoise_probe.py on tiny-orbit: at the smallest sigma the one-step views are nearly the VAE's
    reconstruction; at the largest (views from the input and cameras alone) the object's own input beats another
    object's by a clear margin, so the model reads its input."""
    import importlib.util

    path = ASSETS.parents[1] / "recipes" / "denoise_probe.py"
    spec = importlib.util.spec_from_file_location("denoise_probe", path)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    from svd3d.models import load_model

    result = probe.probe(load_model("tiny-orbit"), unseen_objects.subset([0, 1, 2]), sigmas=(0.05, 80.0))
    (vae,), (low, high), (_, high_other) = result["vae"], result["own"], result["other"]
    assert abs(low - vae) < 1.5, result
    assert high > high_other + 1.0, result
