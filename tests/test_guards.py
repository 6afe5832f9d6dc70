"""Guards that keep a user's files safe: non-finite values stop a job before anything is written, only safetensors
are ever loaded, a broken model_index.json is named, a job that cannot fit in memory is refused before anything is
loaded, and a training run that fails on bad input leaves nothing behind."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from svd3d.cli import main
from svd3d.errors import SVD3DError
from svd3d.models import RELEASED_WIDTHS, Widths, load_model, model_widths
from svd3d.models.registry import ASSETS
from svd3d.pipelines.common import check_memory, peak_memory, warn_far_from_training
from svd3d.pipelines.orbit import generate_orbit
from svd3d.pipelines.video import generate_video

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
GB = 1e9


def run(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def one_line_error(result) -> str:
    """The one `error: ...` line the CLI ends with (progress bars may come before it), exit code 2, no traceback."""
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and result.output.strip().splitlines()[-1] == errors[0], result.output
    assert "Traceback" not in result.output
    return errors[0]


# ------------------------------------------------------------------------------------------------ NaN / Inf


def poisoned(kind: str, network: str, parameter: str):
    """The bundled tiny model of `kind` with one weight of `network` set to NaN."""
    model = load_model(f"tiny-{kind}")
    with torch.no_grad():
        dict(getattr(model, network).named_parameters())[parameter].view(-1)[0] = float("nan")
    return model


@pytest.fixture(scope="module")
def poisoned_video_folder(tmp_path_factory) -> Path:
    """A diffusers folder on disk whose UNet holds a NaN weight."""
    from svd3d.models.diffusers_io import save_diffusers

    return save_diffusers(poisoned("video", "unet", "conv_in.weight"), tmp_path_factory.mktemp("m") / "nan-video")


@pytest.mark.parametrize(
    ("network", "parameter", "stage"),
    [
        ("unet", "conv_in.weight", "sampling produced non-finite latents at step 1 of 2"),
        ("vae", "decoder.conv_out.weight", "decoding produced non-finite frames"),
        ("image_encoder", "visual_projection.weight", "encoding the image with CLIP"),
    ],
)
def test_nan_weights_stop_the_video_before_anything_is_written(tmp_path, image_file, network, parameter, stage):
    model = poisoned("video", network, parameter)
    out = tmp_path / "clip.mp4"
    with pytest.raises(SVD3DError) as err:
        generate_video(image_file, model=model, steps=2, device="cpu", output=out, progress=False)
    message = str(err.value)
    assert stage in message and "NaN/Inf" in message and parameter in message and "corrupt" in message
    assert "\n" not in message
    assert not out.exists() and not (tmp_path / "clip.run.json").exists()


def test_nan_weights_stop_the_orbit_before_anything_is_written(tmp_path, image_file):
    model = poisoned("orbit", "unet", "conv_in.weight")
    out = tmp_path / "orbit"
    with pytest.raises(SVD3DError, match="sampling produced non-finite latents at step 1 of 2") as err:
        generate_orbit(image_file, model=model, steps=2, device="cpu", output=out, progress=False)
    assert "conv_in.weight" in str(err.value)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.png"]


def test_float16_overflow_is_named_with_the_fix():
    from svd3d.pipelines.common import check_finite

    net = torch.nn.Linear(2, 2).half()  # finite weights: the NaN came from an overflow
    with pytest.raises(SVD3DError, match=r"overflowed in float16; rerun with --dtype float32"):
        check_finite(torch.tensor([float("inf")]), "sampling produced non-finite latents at step 4 of 25", net)


def test_nan_model_folder_on_the_command_line(tmp_path, image_file, poisoned_video_folder):
    out = tmp_path / "clip.mp4"
    args = ["video", str(image_file), "--model", str(poisoned_video_folder), "--steps", "2", "--device", "cpu"]
    line = one_line_error(run([*args, "-o", str(out)]))
    assert "sampling produced non-finite latents" in line and "re-download" in line
    assert not out.exists() and not (tmp_path / "clip.run.json").exists()


# ------------------------------------------------------------------------------------------------ no pickle


@pytest.fixture
def bundled_copy(tmp_path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(ASSETS / "tiny-video", folder)
    return folder


def refuse_unpickling(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("a pickle file was opened")

    monkeypatch.setattr(torch, "load", boom)


@pytest.mark.parametrize(
    ("part", "pickle_name"),
    [("image_encoder", "pytorch_model.bin"), ("unet", "diffusion_pytorch_model.bin"), ("vae", "model.ckpt")],
)
def test_pickle_weights_in_a_folder_are_refused_unopened(bundled_copy, monkeypatch, part, pickle_name):
    from safetensors.torch import load_file

    weights = next((bundled_copy / part).glob("*.safetensors"))
    torch.save(load_file(str(weights)), bundled_copy / part / pickle_name)
    weights.unlink()
    refuse_unpickling(monkeypatch)
    with pytest.raises(SVD3DError) as err:
        load_model(bundled_copy)
    message = str(err.value)
    assert "only .safetensors" in message and pickle_name in message and part in message


def test_pickle_folder_on_the_command_line(bundled_copy, tmp_path, image_file, monkeypatch):
    (bundled_copy / "image_encoder" / "model.safetensors").unlink()
    (bundled_copy / "image_encoder" / "pytorch_model.bin").write_bytes(b"not even read")
    refuse_unpickling(monkeypatch)
    out = tmp_path / "clip.mp4"
    line = one_line_error(run(["video", str(image_file), "--model", str(bundled_copy), "-o", str(out)]))
    assert "only .safetensors" in line and "pytorch_model.bin" in line
    assert not out.exists()


def test_a_folder_without_weights_is_named(bundled_copy):
    (bundled_copy / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(SVD3DError, match=r"vae holds no \.safetensors weights"):
        load_model(bundled_copy)


# ------------------------------------------------------------------------------------------------ model_index.json


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "must hold a JSON object, got a list"),
        ('{"vae": ["diffusers", "AutoencoderKLTemporalDecoder"]}', "lists no 'unet' component"),
        ('{"unet": "PerFrameUNet", "vae": ["d", "v"], "image_encoder": ["t", "c"]}', "'unet' must be [library, class]"),
    ],
)
def test_a_broken_model_index_is_one_line(bundled_copy, text, needle):
    (bundled_copy / "model_index.json").write_text(text)
    with pytest.raises(SVD3DError) as err:
        load_model(bundled_copy)
    message = str(err.value)
    assert needle in message and "model_index.json" in message and "\n" not in message


def test_a_broken_model_index_on_the_command_line(bundled_copy, tmp_path, image_file):
    (bundled_copy / "model_index.json").write_text("{not json")
    out = tmp_path / "clip.mp4"
    line = one_line_error(run(["video", str(image_file), "--model", str(bundled_copy), "-o", str(out)]))
    assert "model_index.json" in line and "not valid JSON" in line


def test_a_broken_svd3d_json_is_one_line(bundled_copy):
    (bundled_copy / "svd3d.json").write_text('{"name": "x"}')
    with pytest.raises(SVD3DError, match=r"svd3d\.json is not a valid svd3d model description"):
        load_model(bundled_copy)


# ------------------------------------------------------------------------------------------------ memory


@pytest.fixture
def no_loading(monkeypatch):
    """Any model load fails the test: the refusal must come first."""

    def boom(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("svd3d.models.load_model", boom)


def test_a_huge_video_size_is_refused_before_loading(tmp_path, image_file, no_loading):
    out = tmp_path / "clip.mp4"
    started = time.perf_counter()
    with pytest.raises(SVD3DError) as err:
        generate_video(image_file, size=(100000, 100000), device="cpu", output=out, progress=False)
    assert time.perf_counter() - started < 0.5
    message = str(err.value)
    assert "100000x100000" in message and "GB" in message and "--size" in message and "this machine has" in message
    assert not out.exists()


def test_a_huge_orbit_size_is_refused_before_loading(tmp_path, image_file, no_loading):
    started = time.perf_counter()
    with pytest.raises(SVD3DError, match=r"50000x50000 needs at least [\d,.]+ GB"):
        generate_orbit(image_file, size=50000, frames=21, device="cpu", output=tmp_path / "o", progress=False)
    assert time.perf_counter() - started < 0.5
    assert not (tmp_path / "o").exists()


def test_a_huge_size_on_the_command_line(tmp_path, image_file):
    out = tmp_path / "clip.mp4"
    started = time.perf_counter()
    line = one_line_error(run(["video", str(image_file), "--size", "100000x100000", "-o", str(out)]))
    assert time.perf_counter() - started < 1.0
    assert "100000x100000" in line and "--size" in line
    assert not out.exists()


def test_the_decode_chunk_is_suggested_when_decoding_does_not_fit(monkeypatch):
    monkeypatch.setattr("svd3d.pipelines.common.device_memory", lambda device: 16 * GB)
    with pytest.raises(SVD3DError, match=r"25 frames at 1024x576 needs at least 16\.9 GB .* use --decode-chunk 4 "):
        check_memory("svd_xt.safetensors", "video", (1024, 576), 25, 14, torch.float16, torch.device("cpu"))


@pytest.mark.parametrize(
    ("kind", "frames", "size"),
    [("video", 25, (1024, 576)), ("video", 14, (1024, 576)), ("orbit", 21, (576, 576))],
)
def test_released_defaults_pass_on_a_24_gb_machine(monkeypatch, caplog, kind, frames, size):
    """SVD-XT / SVD at 1024x576 and SV3D at 576x576, decode chunk 14, float32 on a 24 GB CPU: not refused, but
    warned about (their typical decoding peak is more than 24 GB), with a decode chunk that typically fits."""
    need = peak_memory(frames, *size, 14, torch.float32)
    assert max(need.values()) < 24 * GB
    monkeypatch.setattr("svd3d.pipelines.common.device_memory", lambda device: 24 * GB)
    cpu = torch.device("cpu")
    check_memory("released.safetensors", kind, size, None, None, torch.float32, cpu, early=True)
    with caplog.at_level(logging.WARNING, logger="svd3d"):
        check_memory("released.safetensors", kind, size, frames, None, torch.float32, cpu)
    warning = caplog.records[-1].getMessage()
    assert "typically needs about" in warning and "--decode-chunk" in warning


def test_the_estimate_at_the_default_sizes():
    """The least the released models' activations need (documented in the report and in common.py)."""
    svd_xt = peak_memory(25, 1024, 576, 14, torch.float32)
    assert svd_xt["decoding"] == 14 * 1024 * 576 * 256 * 2 * 4  # 16.9 GB
    assert svd_xt["sampling"] == 2 * 25 * 128 * 72 * 320 * 12 * 4  # 7.1 GB
    sv3d = peak_memory(21, 576, 576, 14, torch.float16)
    assert sv3d["decoding"] == 14 * 576 * 576 * 256 * 2 * 4  # the VAE decodes in float32 in a float16 job
    assert sv3d["sampling"] == 2 * 21 * 72 * 72 * 320 * 12 * 2


def test_widths_come_from_the_folder_without_loading(no_loading):
    assert model_widths("tiny-video") == Widths(unet=64, decoder=64, latent_factor=4)
    assert model_widths("no-such-model") == RELEASED_WIDTHS


def test_sizes_far_from_training_are_warned_about(caplog):
    from svd3d.models.info import ModelInfo

    info = ModelInfo.read(ASSETS / "tiny-video")  # 64x64, 8 frames
    with caplog.at_level(logging.WARNING, logger="svd3d"):
        warn_far_from_training(info, 64, 64, 8)
        warn_far_from_training(info, 128, 32, 16)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    for width, height, frames in ((136, 64, 8), (64, 24, 8), (64, 64, 17)):
        with caplog.at_level(logging.WARNING, logger="svd3d"):
            warn_far_from_training(info, width, height, frames)
        assert "far from" in caplog.records[-1].getMessage() and caplog.records[-1].levelno == logging.WARNING


# ------------------------------------------------------------------------------------------------ training


def test_the_dataset_message_names_a_command_that_exists(tmp_path):
    from svd3d.training.data import load_dataset

    with pytest.raises(SVD3DError) as err:
        load_dataset(tmp_path / "nope")
    assert "`svd3d data KIND" in str(err.value) and "svd3d train data" not in str(err.value)
    assert run(["data", "--help"]).exit_code == 0


def test_a_run_with_a_missing_dataset_writes_nothing(tmp_path):
    runs = tmp_path / "run"
    sets = ["--set", "data.generate=''", "--set", f"data.path='{tmp_path / 'nope'}'", "--set", "train.vae_steps=0"]
    line = one_line_error(run(["train", str(RECIPES / "debug.toml"), "-o", str(runs), *sets, "--device", "cpu"]))
    assert "does not exist" in line and "svd3d data" in line
    assert not runs.exists()


def test_an_existing_run_folder_gets_no_recipe_json_on_bad_input(tmp_path):
    from svd3d.training.data import RenderOrbitSettings
    from svd3d.training.loop import train
    from svd3d.training.procedural import procedural_orbit_dataset

    data = tmp_path / "orbits"
    procedural_orbit_dataset(2, data, settings=RenderOrbitSettings(size=32, frames=5, orbits=("static",)), seed=0)
    runs = tmp_path / "run"
    runs.mkdir()
    overrides = {"data.generate": "", "data.path": str(data), "data.held_out": 2}
    with pytest.raises(SVD3DError, match="leaves nothing to train on"):
        train(RECIPES / "debug.toml", runs, overrides=overrides, device="cpu", progress=False)
    assert list(runs.iterdir()) == []


def test_model_index_is_unchanged_for_good_folders(bundled_copy):
    """The checks accept what svd3d and diffusers write."""
    index = json.loads((bundled_copy / "model_index.json").read_text())
    assert index["unet"] == ["diffusers", "UNetSpatioTemporalConditionModel"]
    assert load_model(bundled_copy).info.name == "tiny-video"
