"""Text -> image -> video / orbit / mesh: `svd3d video|orbit --prompt ... --t2i-model DIR` with a tiny
text-to-image pipeline built here (tests/tiny_t2i.py: a real diffusers StableDiffusionPipeline folder, random UNet
and text encoder; nothing downloads) and the bundled tiny video and orbit models, end to end; the seed makes the
image; and bad input keeps the contract (one line naming the fix, exit 2, nothing written, before any work)."""

from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from tiny_t2i import build_tiny_t2i

import svd3d
from svd3d import defaults
from svd3d.cli import main
from svd3d.errors import SVD3DError
from svd3d.outputs import fingerprint

FAST = ["--t2i-steps", "2", "--steps", "2", "--device", "cpu"]


def run(args: list[str]):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="session")
def t2i(tmp_path_factory) -> Path:
    return build_tiny_t2i(tmp_path_factory.mktemp("t2i") / "tiny-t2i")


def sd_default(name: str):
    """The StableDiffusionPipeline's own default for a __call__ argument (what svd3d uses when none is asked)."""
    from diffusers import StableDiffusionPipeline

    return inspect.signature(StableDiffusionPipeline.__call__).parameters[name].default


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), np.float32)


# ------------------------------------------------------------------------------------------------ end to end


def test_video_from_text(t2i, tmp_path):
    """text -> image -> clip (a folder of frames) with the bundled tiny-video model: the frames, the image and
    run.json's record of how the image was made; the clip is exactly the one that image makes."""
    out = tmp_path / "balloon"
    r = run(["video", "--prompt", "a red balloon", "--t2i-model", t2i, *FAST, "--seed", "5", "-o", out])
    assert r.exit_code == 0, r.output
    made = out / "prompt.png"
    assert made.is_file() and (out / "000.png").is_file() and (out / "run.json").is_file()
    assert f"{made} and" in r.output
    record = json.loads((out / "run.json").read_text())
    assert record["model"]["source"] == "tiny-video"
    given = record["input"]
    assert given["prompt"] == "a red balloon" and given["image"] == "prompt.png"
    assert given["image_sha256"] == fingerprint(made)["sha256"]
    text = given["text_to_image"]
    assert text["full_prompt"] == "a red balloon" and text["suffix"] == defaults.T2I_VIDEO_SUFFIX
    assert text["model"]["source"] == str(t2i) and text["model"]["pipeline"] == "StableDiffusionPipeline"
    assert text["model"]["fingerprint"]
    assert (text["seed"], text["steps"], text["size"]) == (5, 2, [64, 64])
    assert text["guidance"] == sd_default("guidance_scale")  # none asked for: the pipeline's own, recorded
    assert "made from the prompt" in (out / "index.html").read_text()
    # the image is the one the same seed makes alone, and the clip is the one that image makes
    again = svd3d.generate_image("a red balloon", t2i, seed=5, steps=2, device="cpu")
    assert np.array_equal(np.asarray(again.image, np.float32), pixels(made))
    clip = svd3d.generate_video(again.image, steps=2, seed=5, device="cpu", progress=False)
    for i, frame in enumerate(clip.frames_uint8()):
        assert np.array_equal(pixels(out / f"{i:03d}.png"), frame.astype(np.float32)), i


def test_orbit_from_text_to_mesh(t2i, tmp_path):
    """text -> image -> object preprocessing -> views -> mesh with the bundled tiny-orbit model: prompt.png as made,
    input.png centred on white, the views, a mesh, and the prompt with its orbit suffix in run.json."""
    out = tmp_path / "chair"
    r = run(["orbit", "--prompt", "a red chair", "--t2i-model", t2i, *FAST, "--frames", "6",
             "--method", "hull", "--faces", "800", "--texture", "64", "-o", out])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "prompt.png, made from the prompt" in r.output
    for name in ("prompt.png", "input.png", "frames/005.png", "transforms.json", "mesh.glb", "run.json", "index.html"):
        assert (out / name).is_file(), name
    record = json.loads((out / "run.json").read_text())
    text = record["input"]["text_to_image"]
    assert text["full_prompt"] == "a red chair" + defaults.T2I_ORBIT_SUFFIX
    assert (
        text["seed"] == defaults.SEED and record["input"]["image_sha256"] == fingerprint(out / "prompt.png")["sha256"]
    )
    assert record["model"]["source"] == "tiny-orbit" and record["preprocess"]["method"] == "background"
    # the object was found and framed: input.png has white borders and the object at object_fraction of the side
    framed = pixels(out / "input.png")
    assert framed.shape == (64, 64, 3) and framed[0].min() == 255 and framed[:, 0].min() == 255
    rows = np.flatnonzero((framed < 250).any(axis=(1, 2)))
    assert abs((rows[-1] - rows[0] + 1) / 64 - defaults.OBJECT_FRACTION) < 0.1
    assert "made from the prompt" in (out / "index.html").read_text()


def test_seed_and_prompt_make_the_image(t2i):
    """The same seed makes the same image; another seed, another prompt or a suffix make another."""
    options = {"steps": 2, "device": "cpu"}
    first = np.asarray(svd3d.generate_image("a blue cup", t2i, seed=3, **options).image, np.float32)
    same = np.asarray(svd3d.generate_image("a blue cup", t2i, seed=3, **options).image, np.float32)
    assert np.array_equal(first, same)
    for other in (
        svd3d.generate_image("a blue cup", t2i, seed=4, **options),
        svd3d.generate_image("a green lamp", t2i, seed=3, **options),
        svd3d.generate_image("a blue cup", t2i, seed=3, suffix=", on white", **options),
    ):
        assert np.abs(np.asarray(other.image, np.float32) - first).mean() > 1.0, other.record


def test_defaults_are_written_once():
    for fn, suffix in (
        (svd3d.generate_video, defaults.T2I_VIDEO_SUFFIX),
        (svd3d.generate_orbit, defaults.T2I_ORBIT_SUFFIX),
    ):
        params = inspect.signature(fn).parameters
        assert params["t2i_steps"].default == defaults.T2I_STEPS
        assert params["t2i_guidance"].default == defaults.T2I_GUIDANCE
        assert params["t2i_suffix"].default == suffix
    for command, suffix in (("video", defaults.T2I_VIDEO_SUFFIX), ("orbit", defaults.T2I_ORBIT_SUFFIX)):
        options = {p.name: p.default for p in main.commands[command].params}
        assert options["t2i_steps"] == defaults.T2I_STEPS and options["t2i_guidance"] == defaults.T2I_GUIDANCE
        assert options["t2i_suffix"] == suffix


# ------------------------------------------------------------------------------------------------ bad input


def assert_refused(result, folder: Path, *needles: str, before: set[str] | None = None):
    """Exit 2, one line naming the problem, and the folder as it was."""
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error: "), result.output
    for needle in needles:
        assert needle.lower() in line.lower(), line
    assert {p.name for p in folder.iterdir()} == (before or set()), "something was written"


@pytest.mark.parametrize("command", ["video", "orbit"])
def test_prompt_without_a_model_says_what_to_pass(tmp_path, command):
    """Checked before any model loads: a --model that does not exist is not even looked at."""
    r = run([command, "--prompt", "a red chair", "--model", "no-such-model", "-o", tmp_path / "out.mp4"])
    assert_refused(r, tmp_path, "--prompt needs a text-to-image model", "--t2i-model", "hub id")


@pytest.mark.parametrize("command", ["video", "orbit"])
def test_an_image_and_a_prompt(t2i, tmp_path, image_file, command):
    r = run([command, image_file, "--prompt", "a red chair", "--t2i-model", t2i, "--model", "no-such-model",
             "-o", tmp_path / "out"])  # fmt: skip
    assert_refused(r, tmp_path, "pass an IMAGE or --prompt, not both", before={"input.png"})


def test_neither_an_image_nor_a_prompt(tmp_path):
    r = run(["video", "-o", tmp_path / "clip.mp4"])
    assert_refused(r, tmp_path, "nothing to start from", "--prompt")


def test_t2i_options_without_a_prompt(tmp_path, image_file):
    r = run(["video", image_file, "--t2i-steps", "4", "-o", tmp_path / "clip.mp4"])
    assert_refused(r, tmp_path, "--t2i-steps only work with --prompt", before={"input.png"})


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--t2i-steps", "0"], "--t2i-steps must be"),
        (["--t2i-guidance", "-1"], "--t2i-guidance must be 0 or more"),
        (["--prompt", "  "], "--prompt is empty"),
    ],
)
def test_bad_t2i_values(t2i, tmp_path, args, needle):
    options = {"--prompt": "a cup", "--t2i-model": str(t2i)} | dict(zip(args[::2], args[1::2], strict=True))
    r = run(["video", *[x for pair in options.items() for x in pair], "-o", tmp_path / "clip.mp4"])
    assert_refused(r, tmp_path, needle)


def test_bad_t2i_size(t2i, tmp_path):
    r = run(["video", "--prompt", "a cup", "--t2i-model", t2i, "--t2i-size", "100x64", "-o", tmp_path / "c.mp4"])
    assert r.exit_code == 2 and "multiples of 8" in r.output and list(tmp_path.iterdir()) == []


def t2i_model_cases(t2i: Path, tmp_path: Path) -> list[tuple[str, str]]:
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    file = tmp_path / "weights.safetensors"
    file.write_bytes(b"\0" * 16)
    return [
        (str(tmp_path / "no-such-folder"), "does not exist"),
        ("./sd-turbo", "does not exist"),
        (str(empty), "no model_index.json"),
        (str(file), "is a file"),
        ("assets/models/tiny-video", "holds a StableVideoDiffusionPipeline, not a text-to-image pipeline"),
    ]


def test_bad_t2i_models_are_refused_before_any_work(t2i, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    for model, needle in t2i_model_cases(t2i, tmp_path):
        r = run(["video", "--prompt", "a cup", "--t2i-model", model, "--model", "no-such-model", "-o", work / "c.mp4"])
        assert_refused(r, work, needle, model)


def test_unloadable_t2i_models(t2i, tmp_path):
    """Found only when loading: a hub id that is neither reachable (tests are offline) nor cached, and a folder
    with a component missing."""
    broken = tmp_path / "broken"
    shutil.copytree(t2i, broken)
    shutil.rmtree(broken / "unet")
    work = tmp_path / "work"
    work.mkdir()
    for model, needle in (("someone/no-such-model", "cannot reach the Hugging Face hub"),
                          (str(broken), "cannot load the text-to-image model")):  # fmt: skip
        r = run(["video", "--prompt", "a cup", "--t2i-model", model, *FAST, "-o", work / "c.mp4"])
        assert_refused(r, work, needle, model)


def test_an_orbit_prompt_image_without_an_object(t2i, tmp_path):
    """An image with nothing to find (this pipeline paints only white at 16 px) is named as the prompt's."""
    r = run(["orbit", "--prompt", "a cup", "--t2i-model", t2i, "--t2i-size", "16x16", *FAST, "--no-mesh",
             "-o", tmp_path / "cup"])  # fmt: skip
    assert_refused(r, tmp_path, "no object found", "made from the prompt", "--t2i-suffix")


@pytest.mark.parametrize("command", ["video", "orbit"])
def test_a_prompt_does_not_start_a_batch(t2i, tmp_path, image_file, command):
    second = tmp_path / "second.png"
    shutil.copy(image_file, second)
    r = run([command, image_file, second, "--prompt", "a cup", "--t2i-model", t2i, "-o", tmp_path / "root"])
    assert_refused(r, tmp_path, "--prompt", "batch", before={"input.png", "second.png"})
    manifest = tmp_path / "list.jsonl"
    manifest.write_text(json.dumps({"input": "input.png", "prompt": "a cup"}) + "\n")
    r = run([command, manifest, "-o", tmp_path / "root"])
    assert r.exit_code == 2 and "prompt" in r.output and not (tmp_path / "root").exists()


def test_the_image_beside_a_clip_is_svd3ds_own(t2i, tmp_path, image_file):
    """`<name>.prompt.png` is replaced only when svd3d wrote it; an image job replacing a text job's clip takes
    the text job's image away with it, so no image describes a clip it did not make."""
    clip, made = tmp_path / "clip.gif", tmp_path / "clip.prompt.png"
    made.write_bytes(b"someone's picture")
    r = run(["video", "--prompt", "a cup", "--t2i-model", t2i, *FAST, "-o", clip])
    assert_refused(r, tmp_path, "clip.prompt.png", "svd3d did not write it", before={"input.png", made.name})
    made.unlink()
    assert run(["video", "--prompt", "a cup", "--t2i-model", t2i, *FAST, "-o", clip]).exit_code == 0
    assert made.is_file()
    assert run(["video", "--prompt", "a mug", "--t2i-model", t2i, *FAST, "-o", clip]).exit_code == 0  # its own
    assert run(["video", image_file, "--steps", "2", "--device", "cpu", "-o", clip]).exit_code == 0
    assert clip.is_file() and not made.exists()
    assert json.loads((tmp_path / "clip.run.json").read_text())["input"]["path"] == str(image_file)


def test_an_input_photo_named_like_a_prompt_image_is_never_touched(t2i, tmp_path, image_file):
    """run.json's hash of an input photo does not make the photo svd3d's, whatever its name."""
    photo, clip = tmp_path / "clip.prompt.png", tmp_path / "clip.gif"
    shutil.copy(image_file, photo)
    original = photo.read_bytes()
    for _ in range(2):  # the second image job replaces the first one's clip
        assert run(["video", photo, "--steps", "1", "--device", "cpu", "-o", clip]).exit_code == 0
    r = run(["video", "--prompt", "a cup", "--t2i-model", t2i, *FAST, "-o", clip])
    assert r.exit_code == 2 and "clip.prompt.png exists and svd3d did not write it" in r.output
    assert photo.read_bytes() == original


def test_generate_image_checks_its_arguments(t2i):
    with pytest.raises(SVD3DError, match="--prompt is empty"):
        svd3d.generate_image("", t2i)
    with pytest.raises(SVD3DError, match="does not exist"):
        svd3d.generate_image("a cup", "./nowhere")
