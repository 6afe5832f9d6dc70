"""LoRA adapters (svd3d.models.lora): the [lora] recipes train 2 steps and resume exactly, the saved adapter is
PEFT's format (peft loads it and agrees), fuse and separate give the same clips, a model passed in is restored bit
for bit, adapters that do not fit are refused before any work; the camera-restricted clips and the flow measure."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open

from svd3d.errors import SVD3DError
from svd3d.models.lora import (
    ADAPTER_FILE,
    CONFIG_FILE,
    applied_adapters,
    check_adapters_fit,
    lora_target_modules,
    parse_lora,
    read_adapter,
    save_adapter,
)
from svd3d.training.loop import train
from svd3d.training.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
CAMERA_RECIPES = sorted(RECIPES.glob("tiny-video-*.toml"))
SHRINK = {"data.count": 6, "data.held_out": 2, "model.frames": 4, "model.size": 32, "train.batch": 2,
          "train.steps": 2, "train.save_every": 2}  # fmt: skip
LORA_DEBUG = {"model.init": "random-tiny-orbit", "train.vae_steps": 0, "lora.rank": 4, "lora.alpha": 8.0,
              "lora.dropout": 0.2}  # fmt: skip


def random_adapter(folder: Path, unet, *, rank: int = 4, alpha: float = 8.0, blocks=("temporal", "spatial"),
                   seed: int = 0, std: float = 0.2, record: dict | None = None) -> Path:  # fmt: skip
    """A PEFT-format adapter with random A and B (non-zero, so it changes the output) for `unet`'s attention."""
    from peft import LoraConfig

    from svd3d.models.lora import config_dict

    g = torch.Generator().manual_seed(seed)
    modules = lora_target_modules(unet, blocks, ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0"))
    tensors = {}
    for name in modules:
        layer = unet.get_submodule(name)
        tensors[f"base_model.model.{name}.lora_A.weight"] = torch.randn(rank, layer.in_features, generator=g) * std
        tensors[f"base_model.model.{name}.lora_B.weight"] = torch.randn(layer.out_features, rank, generator=g) * std
    config = config_dict(LoraConfig(r=rank, lora_alpha=alpha, target_modules=modules))
    save_adapter(folder, tensors, config, record or {"base_model": "random-tiny-video"})
    return folder


def unet_out(unet, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    frames = unet.config.num_frames
    x = torch.randn(1, frames, unet.config.in_channels, 8, 8, generator=g).to(unet.dtype)
    ctx = torch.randn(1, 1, unet.config.cross_attention_dim, generator=g).to(unet.dtype)
    vector = torch.randn(1, len(unet.vector_fields), generator=g).abs()
    with torch.no_grad():
        return unet(x, torch.tensor([0.3]), encoder_hidden_states=ctx, added_time_ids=vector, return_dict=False)[0]


# ------------------------------------------------------------------------------------------------ recipes


def test_lora_recipes_parse_and_bad_ones_are_named(tmp_path):
    recipe = load_recipe(RECIPES / "tiny-video-pan-left.toml")
    assert recipe.lora.rank == 8 and recipe.lora.blocks == ("temporal", "spatial") and recipe.data.camera == "pan-left"
    assert load_recipe(RECIPES / "tiny-video.toml").lora is None
    base = "[model]\nkind = 'video'\ninit = 'tiny-video'\n[data]\ngenerate = 'clips'\n"
    cases = [
        ("[lora]\nrank = 0\n", "lora.rank must be >= 1"),
        ("[lora]\ntargets = ['attn2.to_q']\n", "attn2's to_q / to_k see one token"),
        ("[lora]\nblocks = ['temporal', 'temporal']\n", "once each"),
        ("[lora]\nblocks = ['mid']\n", "lora.blocks = 'mid' is not one of"),
        ("[lora]\nranks = 4\n", "unknown key(s) 'ranks' in [lora]"),
        ("[lora]\n[train]\ndecoder_steps = 5\n", "leaves the base model's VAE"),
    ]
    for text, message in cases:
        path = tmp_path / "r.toml"
        path.write_text(base + text)
        with pytest.raises(SVD3DError, match=None) as err:
            load_recipe(path)
        assert message in str(err.value), (text, str(err.value))
    path.write_text("[model]\nkind = 'video'\n[data]\ngenerate = 'clips'\n[lora]\n")
    with pytest.raises(SVD3DError, match="set model.init"):
        load_recipe(path)
    path.write_text("[model]\nkind = 'orbit'\n[data]\ngenerate = 'procedural'\ncamera = 'zoom-in'\n")
    with pytest.raises(SVD3DError, match="needs data.generate = 'clips'"):
        load_recipe(path)


def test_a_lora_cannot_turn_a_video_model_into_an_orbit_model(tmp_path):
    overrides = {**LORA_DEBUG, "model.init": "random-tiny-video"}
    with pytest.raises(SVD3DError, match="a LoRA adapts a model of its own kind"):
        train(RECIPES / "debug.toml", tmp_path / "run", overrides=overrides, progress=False)


# ------------------------------------------------------------------------------------------------ training


@pytest.mark.parametrize("path", CAMERA_RECIPES, ids=lambda p: p.stem)
def test_every_camera_recipe_trains_2_steps_into_a_peft_adapter(tmp_path, path):
    """Each shipped camera-motion recipe through the real loop for 2 steps (shrunk data), on its real base model."""
    result = train(path, tmp_path / "run", overrides=SHRINK, progress=False)
    assert result.step == 2 and all(np.isfinite(result.losses)) and result.model_dir.name == "adapter"
    recipe = load_recipe(path)
    config = json.loads((result.model_dir / CONFIG_FILE).read_text())
    assert config["peft_type"] == "LORA" and config["r"] == recipe.lora.rank
    assert config["base_model_name_or_path"] == "tiny-video"
    with safe_open(str(result.model_dir / ADAPTER_FILE), framework="pt") as f:
        keys = list(f.keys())
        meta = f.metadata()
    assert keys and all(k.startswith("base_model.model.") and ".lora_" in k for k in keys)
    assert json.loads(meta["svd3d"])["camera"] == recipe.data.camera
    assert "# " + recipe.name in (result.model_dir / "README.md").read_text()
    assert not (tmp_path / "run" / "model").exists()
    data = json.loads((tmp_path / "run" / "data" / "manifest.json").read_text())
    assert data["source"]["settings"]["camera"] == recipe.data.camera


def test_lora_run_freezes_the_base_and_resumes_exactly(tmp_path):
    """An orbit-model LoRA (dropout on): the checkpoint holds only the LoRA tensors; 2 + 2 steps resumed equal 4
    straight, bit for bit (weights, EMA, losses); the adapter at step 0 (B = 0) is the base model."""
    from svd3d.models import load_model

    debug = RECIPES / "debug.toml"
    sets = {**LORA_DEBUG, "train.steps": 4, "train.save_every": 2, "train.keep": 5}
    straight = train(debug, tmp_path / "straight", overrides=sets, progress=False)
    train(debug, tmp_path / "resumed", overrides=sets, progress=False, stop_after=2)
    resumed = train(debug, tmp_path / "resumed", overrides=sets, progress=False)
    assert straight.step == resumed.step == 4
    for name in ("lora", "ema"):
        a = _checkpoint(tmp_path / "straight", 4, name)
        b = _checkpoint(tmp_path / "resumed", 4, name)
        assert sorted(a) == sorted(b) and all(".lora_" in k for k in a)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    logs = [[json.loads(x)["loss"] for x in (r / "log.jsonl").read_text().splitlines()]
            for r in (tmp_path / "straight", tmp_path / "resumed")]  # fmt: skip
    assert logs[0] == logs[1] and len(logs[0]) == 4
    assert sorted(p.name for p in (tmp_path / "straight/checkpoints/step-000004").iterdir()) == [
        "ema.safetensors", "lora.safetensors", "optimizer.pt", "state.json"]  # fmt: skip
    # the trained update is not zero; at step 0 (B = 0) it is: the base model
    adapter = read_adapter(str(straight.model_dir))
    assert any(float(b.abs().max()) > 0 for _, b in adapter.pairs.values())
    unet = load_model("random-tiny-orbit").unet
    zero = replace(adapter, pairs={k: (a, torch.zeros_like(b)) for k, (a, b) in adapter.pairs.items()})
    with applied_adapters(unet, [zero], "separate"):
        at_zero = unet_out(unet)
    assert torch.equal(at_zero, unet_out(unet))


def _checkpoint(run: Path, step: int, name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "checkpoints" / f"step-{step:06d}" / f"{name}.safetensors"))


# ------------------------------------------------------------------------------------------------ using adapters


def test_peft_loads_the_file_and_agrees_with_fuse_and_separate(tmp_path, tiny_video_model):
    """The saved folder is PEFT's format: peft.PeftModel.from_pretrained(unet, folder) computes what svd3d's
    separate mode computes, bit for bit. Fusing computes the same function: in float64 the two agree to 1e-10 (in
    float32 to its rounding). Scales and several adapters add; both modes leave the model as it was."""
    from peft import PeftModel

    from svd3d.models.tiny import tiny_random_model

    unet = tiny_video_model.unet
    one = random_adapter(tmp_path / "one", unet, seed=1)
    two = random_adapter(tmp_path / "two", unet, seed=2, rank=2, alpha=1.0, blocks=("temporal",))
    base = unet_out(unet)
    peft_unet = PeftModel.from_pretrained(tiny_random_model("video", seed=0).unet, str(one))
    with torch.no_grad():
        expected = unet_out(peft_unet)
    adapters = [read_adapter(str(one))]
    with applied_adapters(unet, adapters, "separate"):
        separate = unet_out(unet)
    with applied_adapters(unet, adapters, "fuse"):
        fused = unet_out(unet)
    assert torch.equal(separate, expected)
    assert float((separate - base).abs().max()) > 1e-3  # the adapter changes the output
    torch.testing.assert_close(fused, separate, rtol=0, atol=1e-4)
    assert torch.equal(unet_out(unet), base)
    both = [read_adapter(str(one), 0.5), read_adapter(str(two / ADAPTER_FILE), -1.5)]
    wide = tiny_random_model("video", seed=0).unet.double()
    outputs = {}
    for mode in ("separate", "fuse"):
        with applied_adapters(wide, both, mode):
            outputs[mode] = unet_out(wide)
    assert outputs["fuse"].dtype == torch.float64
    torch.testing.assert_close(outputs["fuse"], outputs["separate"], rtol=0, atol=1e-10)
    assert torch.equal(unet_out(unet), base)


@pytest.fixture(scope="module")
def tiny_video():
    from svd3d.models import load_model

    return load_model("tiny-video")


def test_video_with_loras_fuse_equals_separate_restores_the_model_and_records_them(tmp_path, tiny_video):
    """On the bundled tiny-video, a clip made with a fused adapter and one made with it separate agree to 1e-5
    (measured 2e-6) while the adapter moves the clip by about 0.1-0.6; the model is the base model again after."""
    from svd3d.pipelines.video import generate_video

    model = tiny_video
    before = {k: v.clone() for k, v in model.unet.state_dict().items()}
    adapter = random_adapter(tmp_path / "pan", model.unet, std=0.1)
    image = ROOT / "assets/examples/balloon.png"
    args = {"model": model, "steps": 4, "device": "cpu", "progress": False}
    plain = generate_video(image, **args)
    fused = generate_video(image, loras=[(adapter, 0.7)], output=tmp_path / "f.mp4", **args)
    separate = generate_video(image, loras=[f"{adapter}:0.7"], lora_mode="separate", **args)
    np.testing.assert_allclose(fused.frames, separate.frames, rtol=0, atol=1e-5)
    assert np.abs(fused.frames - plain.frames).max() > 0.05
    after = model.unet.state_dict()
    assert sorted(after) == sorted(before) and all(torch.equal(after[k], before[k]) for k in before)
    again = generate_video(image, **args)
    assert np.array_equal(again.frames, plain.frames)
    run = json.loads((tmp_path / "f.run.json").read_text())
    (record,) = run["loras"]
    assert record["scale"] == 0.7 and record["bytes"] == (adapter / ADAPTER_FILE).stat().st_size
    assert len(record["sha256"]) == 64 and record["base_model"] == "random-tiny-video"
    assert run["settings"]["lora_mode"] == "fuse" and "lora" in run["timings_s"]


def test_orbit_takes_loras(tmp_path, tiny_orbit_model):
    from svd3d.pipelines.orbit import generate_orbit

    adapter = random_adapter(tmp_path / "a", tiny_orbit_model.unet, std=0.3)
    args = {"model": tiny_orbit_model, "steps": 2, "frames": 4, "size": 32, "device": "cpu", "progress": False}
    image = ROOT / "assets/examples/toy_a.png"
    plain = generate_orbit(image, **args)
    adapted = generate_orbit(image, loras=[str(adapter)], output=tmp_path / "orbit", **args)
    assert np.abs(adapted.frames - plain.frames).max() > 1e-3
    modules = len(read_adapter(str(adapter)).pairs)
    assert json.loads((tmp_path / "orbit" / "run.json").read_text())["loras"][0]["modules"] == modules > 0


def test_adapters_that_do_not_fit_are_refused(tmp_path, tiny_video_model, tiny_orbit_model):
    unet = tiny_video_model.unet
    folder = random_adapter(tmp_path / "a", unet)
    adapter = read_adapter(str(folder))
    check_adapters_fit(unet, [adapter], "random-tiny-video")
    module = next(iter(adapter.pairs))
    a, b = adapter.pairs[module]
    wide = replace(adapter, pairs={module: (torch.zeros(4, 2 * a.shape[1]), b)})
    with pytest.raises(SVD3DError, match=rf"does not fit model m: it adapts {module} as {2 * a.shape[1]} -> "):
        check_adapters_fit(unet, [wide], "m")
    alien = replace(adapter, pairs={"down_blocks.9.attn1.to_q": (a, b)})
    with pytest.raises(SVD3DError, match="a linear layer the model does not have .it was trained on random-tiny"):
        check_adapters_fit(unet, [alien], "m")


def test_bad_adapter_files_are_named(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(SVD3DError, match="does not exist"):
        read_adapter(str(tmp_path / "nope.safetensors"))
    save_file(
        {"x.lora_A.weight": torch.zeros(2, 3), "x.lora_B.weight": torch.zeros(3, 2)}, str(tmp_path / "a.safetensors")
    )
    with pytest.raises(SVD3DError, match="has no config"):
        read_adapter(str(tmp_path / "a.safetensors"))
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 2, "use_dora": True}))
    with pytest.raises(SVD3DError, match="uses use_dora"):
        read_adapter(str(tmp_path / "a.safetensors"))
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 2}))
    assert read_adapter(str(tmp_path / "a.safetensors"), 0.5).factor == 0.5
    save_file({"x.lora_down.weight": torch.zeros(2, 3)}, str(tmp_path / "b.safetensors"))
    with pytest.raises(SVD3DError, match="is not a PEFT LoRA weight"):
        read_adapter(str(tmp_path / "b.safetensors"))
    save_file({"x.lora_A.weight": torch.zeros(2, 3)}, str(tmp_path / "c.safetensors"))
    with pytest.raises(SVD3DError, match="not both lora_A and lora_B"):
        read_adapter(str(tmp_path / "c.safetensors"))


def test_lora_specs_parse(tmp_path):
    assert parse_lora("pan.safetensors") == ("pan.safetensors", 1.0)
    assert parse_lora("pan.safetensors:0.8") == ("pan.safetensors", 0.8)
    assert parse_lora(("pan", -1)) == ("pan", -1.0)
    assert parse_lora(tmp_path) == (str(tmp_path), 1.0)
    with pytest.raises(SVD3DError, match="must be a number"):
        parse_lora(f"{tmp_path}:strong")
    with pytest.raises(SVD3DError, match="must be a number"):
        parse_lora(("pan", "strong"))


def test_cli_lora_errors_exit_2_before_any_work(tmp_path, tiny_orbit_model, image_file):
    """A LoRA of another architecture (an orbit model's adapter has the same names but is given to a model without
    them) or a missing one: one line, exit 2, nothing written."""
    from svd3d.cli import main

    adapter = random_adapter(tmp_path / "a", tiny_orbit_model.unet, blocks=("temporal",))
    wrong = tmp_path / "wrong"
    tensors = {}
    with safe_open(str(adapter / ADAPTER_FILE), framework="pt") as f:
        for k in f.keys():
            t = f.get_tensor(k)
            tensors[k] = torch.zeros(t.shape[0], t.shape[1] * 2) if ".lora_A." in k else t
    save_adapter(wrong, tensors, json.loads((adapter / CONFIG_FILE).read_text()), {"base_model": "some-other-model"})
    out = tmp_path / "clip.mp4"
    for lora, needle in ((str(wrong), "does not fit model random-tiny-video"), ("nope-adapter", "does not exist")):
        result = CliRunner().invoke(main, ["video", str(image_file), "--model", "random-tiny-video", "--steps", "1",
                                           "--lora", lora, "-o", str(out)])  # fmt: skip
        assert result.exit_code == 2, result.output
        assert needle in result.output.strip().splitlines()[-1]
        assert not out.exists() and not (tmp_path / "clip.run.json").exists()


# ------------------------------------------------------------------------------------------------ camera motion


def test_the_flow_measure_recovers_known_pans_and_zooms():
    """A scene with no shapes, the camera panning / zooming at known rates: the affine fit of the dense flow gives
    the picture's motion (the opposite of the camera's) and 2 ln(zoom) divergence per frame, within 3%."""
    from svd3d.eval.flow import global_motion
    from svd3d.training.clips import random_scene, render_scene

    scene = replace(random_scene(np.random.default_rng(3), 64), shapes=(), speed=1.0)
    for pan, zoom, want in [((8.0, 0.0), 0.0, (-1.0, 0.0, 0.0)), ((0.0, -12.0), 0.0, (0.0, 1.5, 0.0)),
                            ((0.0, 0.0), 0.24, (0.0, 0.0, 0.06)), ((0.0, 0.0), -0.24, (0.0, 0.0, -0.06))]:  # fmt: skip
        motion = global_motion(render_scene(replace(scene, pan=pan, zoom=zoom), 8, 8.0))
        got = (motion.flow_x, motion.flow_y, motion.divergence)
        assert np.allclose(got, want, atol=0.03 * max(map(abs, want)) + 2e-3), (pan, zoom, got)


def test_camera_restricted_clips_keep_the_scene_and_move_as_named():
    from svd3d.eval.camera import moves_as
    from svd3d.eval.flow import global_motion
    from svd3d.training.clips import synthetic_clips

    anyway = synthetic_clips(3, size=32, frames=3, seed=9)
    still = synthetic_clips(3, size=32, frames=3, seed=9, camera="static")  # the middle frame: where every camera is
    assert np.array_equal(anyway.fps, still.fps) and np.array_equal(anyway.frames[:, 1], still.frames[:, 1])
    with pytest.raises(SVD3DError, match="unknown camera motion 'dolly'"):
        synthetic_clips(1, camera="dolly")
    for camera in ("pan-left", "pan-down", "zoom-in", "zoom-out", "static"):
        clips = synthetic_clips(12, size=64, frames=8, seed=4, camera=camera)
        share = np.mean([moves_as(global_motion(c), camera) for c in clips.frames])
        assert share >= 0.5, (camera, share)


def test_eval_camera_measures_base_and_each_adapter(tmp_path, tiny_video_model):
    from svd3d.eval.camera import evaluate_camera

    adapter = random_adapter(tmp_path / "a", tiny_video_model.unet, record={"camera": "pan-left"})
    result = evaluate_camera(tiny_video_model, [(adapter, 0.5)], images=2, steps=2, device="cpu", progress=False)
    assert [v.name for v in result.variants] == ["base", f"{adapter} x0.5"]
    assert result.variants[1].camera == "pan-left" and result.variants[1].as_named is not None
    table = result.table()
    assert "| base |" in table and "(pan-left)" in table and "/2 |" in table
    delta = result.versus_base(result.variants[1])
    base_x = np.array([c.flow_x for c in result.variants[0].clips])
    np.testing.assert_allclose(delta, np.array([c.flow_x for c in result.variants[1].clips]) - base_x)
    result.write_json(tmp_path / "camera.json")
    assert json.loads((tmp_path / "camera.json").read_text())["variants"][1]["mean"]["speed"] >= 0


def test_bundled_adapters_are_small_documented_and_fit_tiny_video(tiny_video):
    """Every bundled adapter: found by name, under 1 MB, a card that reports its measurement, trained on tiny-video
    for the camera motion its name says, and it fits tiny-video."""
    from svd3d.models.registry import adapter_entries

    bundled = adapter_entries()
    assert "tiny-video-pan-left" in bundled
    for name, folder in bundled.items():
        adapter = read_adapter(name)
        assert adapter.path == folder / ADAPTER_FILE and adapter.size < 1_000_000
        assert adapter.record["base_model"] == "tiny-video" and name.endswith(adapter.record["camera"])
        card = (folder / "README.md").read_text()
        assert f"# {name}" in card and "svd3d eval camera" in card and "## What it does, measured" in card
        check_adapters_fit(tiny_video.unet, [adapter], "tiny-video")
