"""`svd3d convert`: sgm single files -> diffusers folders that diffusers (SVD) and svd3d (all) load back exactly."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from conftest import sgm_fixture
from safetensors.torch import load_file

from svd3d.cli import main
from svd3d.models import load_model


@pytest.mark.parametrize("variant", ["svd", "sv3d_p"])
def test_convert_roundtrip(tmp_path, variant):
    ckpt = sgm_fixture(f"{variant}.safetensors")
    out = tmp_path / variant
    result = CliRunner().invoke(main, ["convert", str(ckpt), str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert not list(tmp_path.glob("*.tmp-*"))
    index = json.loads((out / "model_index.json").read_text())
    unet_cfg = json.loads((out / "unet" / "config.json").read_text())
    if variant == "svd":
        assert index["_class_name"] == "StableVideoDiffusionPipeline"
        assert index["unet"] == ["diffusers", "UNetSpatioTemporalConditionModel"]
        assert index["vae"] == ["diffusers", "AutoencoderKLTemporalDecoder"]
        assert "vector_fields" not in unet_cfg
    else:
        assert index["unet"] == ["svd3d", "PerFrameUNet"]
        assert index["vae"] == ["diffusers", "AutoencoderKL"]
        assert unet_cfg["vector_fields"] == [["cond_aug", 256], ["polars_rad", 512], ["azimuths_rad", 512]]

    direct, folder = load_model(ckpt), load_model(out)
    assert folder.info == direct.info
    for name, module in direct.modules().items():
        other = folder.modules()[name].state_dict()
        for key, value in module.state_dict().items():
            assert torch.equal(value, other[key]), f"{name}.{key}"
    # the folder reproduces the reference UNet output too
    io = load_file(str(sgm_fixture(f"{variant}_io.safetensors")))
    B, T = io["unet.image_only_indicator"].shape
    values = torch.stack([io[f"unet.value.{n}"] for n in folder.unet.vector_names], -1).reshape(B, T, -1)
    with torch.no_grad():
        out_t = folder.unet(
            io["unet.x"].reshape(B, T, *io["unet.x"].shape[1:]),
            io["unet.timesteps"].reshape(B, T)[:, 0],
            io["unet.context"].reshape(B, T, 1, -1)[:, 0],
            values,
        ).sample
    assert (out_t.flatten(0, 1) - io["unet.out"]).abs().max() <= 1e-4


def test_converted_svd_loads_in_diffusers_pipeline(tmp_path):
    from diffusers import StableVideoDiffusionPipeline

    out = tmp_path / "svd"
    assert CliRunner().invoke(main, ["convert", str(sgm_fixture("svd.safetensors")), str(out)]).exit_code == 0
    pipe = StableVideoDiffusionPipeline.from_pretrained(out)
    ours = load_model(out)
    for key, value in pipe.unet.state_dict().items():
        assert torch.equal(value, ours.unet.state_dict()[key])
    io = load_file(str(sgm_fixture("svd_io.safetensors")))
    with torch.no_grad():  # diffusers' own VAE, from our folder, decodes like the reference
        z = io["decode.z"] / pipe.vae.config.scaling_factor
        decoded = pipe.vae.decode(z, num_frames=z.shape[0]).sample
    assert (decoded - io["decode.out"]).abs().max() <= 1e-4


def test_convert_half_precision(tmp_path):
    out = tmp_path / "svd16"
    r = CliRunner().invoke(main, ["convert", str(sgm_fixture("svd.safetensors")), str(out), "--dtype", "float16"])
    assert r.exit_code == 0, r.output
    weights = load_file(str(out / "unet" / "diffusion_pytorch_model.safetensors"))
    assert {v.dtype for v in weights.values()} == {torch.float16}


def test_load_casts_at_load(tmp_path):
    model = load_model(sgm_fixture("sv3d_u.safetensors"), dtype=torch.bfloat16)
    dtypes = {p.dtype for m in model.modules().values() for p in m.parameters()}
    assert dtypes == {torch.bfloat16}
    assert not any(p.is_meta for m in model.modules().values() for p in m.parameters())
    assert not any(b.is_meta for m in model.modules().values() for b in m.buffers())


def test_explicit_config_for_unknown_file(tmp_path):
    import shutil

    lonely = tmp_path / "finetune.safetensors"
    shutil.copy(sgm_fixture("sv3d_p.safetensors"), lonely)
    model = load_model(lonely, config=sgm_fixture("sv3d_p.yaml"))
    assert model.info.kind == "orbit" and model.unet.vector_names == ("cond_aug", "polars_rad", "azimuths_rad")


def test_convert_folder_to_half_precision(tmp_path):
    """A diffusers folder (e.g. a training run's model/) rewritten in float16 loads back with the same weights."""
    full = tmp_path / "full"
    assert CliRunner().invoke(main, ["convert", str(sgm_fixture("sv3d_p.safetensors")), str(full)]).exit_code == 0
    half = tmp_path / "half"
    r = CliRunner().invoke(main, ["convert", str(full), str(half), "--dtype", "float16"])
    assert r.exit_code == 0, r.output
    a, b = load_model(full), load_model(half)
    assert a.info == b.info
    for name, module in a.modules().items():
        theirs = b.modules()[name].state_dict()
        for key, value in module.state_dict().items():
            torch.testing.assert_close(theirs[key].float(), value.half().float(), rtol=0, atol=0)


def test_convert_refuses_folder_without_model_index(tmp_path):
    r = CliRunner().invoke(main, ["convert", str(tmp_path), str(tmp_path / "out")])
    assert r.exit_code != 0 and "model_index.json" in r.output and not (tmp_path / "out").exists()
