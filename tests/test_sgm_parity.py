"""Numerical parity with Stability's reference implementation (sgm) on its own recorded tiny checkpoints.

Every comparison uses the fixture README's tolerances. The chain: vector -> CLIP token -> conditioning latent ->
UNet -> decoder -> the full guided Euler sampling loop, all through svd3d's converted weights and core functions.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import sgm_fixture
from safetensors.torch import load_file

from svd3d.core import Conditioning, guidance_scales, guided_denoiser, initial_latents, karras_sigmas, sample_euler
from svd3d.core.clip import encode_clip
from svd3d.core.vae import decode_latents, encode_condition
from svd3d.models import load_model
from svd3d.pipelines.common import unet_network

VARIANTS = ["svd", "svd_xt", "sv3d_u", "sv3d_p"]


@pytest.fixture(scope="module", params=VARIANTS)
def case(request):
    name = request.param
    ckpt = sgm_fixture(f"{name}.safetensors")
    io = {k: v.clone() for k, v in load_file(sgm_fixture(f"{name}_io.safetensors")).items()}
    meta = json.loads(sgm_fixture(f"{name}_io.json").read_text())
    model = load_model(ckpt, dtype=torch.float32)
    return name, model, io, meta


def tol(meta, key):
    return meta["suggested_tolerances_max_abs"][key]


def maxdiff(a, b):
    return (a.float() - b.float()).abs().max().item()


def test_detects_variant_and_layout(case):
    name, model, _, meta = case
    layout = [(f["input_key"], f["outdim"]) for f in meta["tests"]["unet"]["vector_layout"]]
    assert list(model.unet.vector_fields) == layout
    assert model.info.kind == ("video" if name.startswith("svd") else "orbit")
    assert model.info.decoder == ("temporal" if name.startswith("svd") else "image")
    assert model.info.guidance == ("linear" if name.startswith("svd") else "triangle")


def _unet_values(model, io):
    return torch.stack([io[f"unet.value.{n}"] for n in model.unet.vector_names], dim=-1)  # (B*T, F)


def test_vector_embedding(case):
    _, model, io, meta = case
    assert maxdiff(model.unet.embed_vector(_unet_values(model, io)), io["unet.y"]) <= tol(meta, "cond.c.vector")
    batch = torch.stack([io[f"cond.batch.{n}"].double() for n in model.unet.vector_names], -1)
    assert maxdiff(model.unet.embed_vector(batch), io["cond.c.vector"]) <= tol(meta, "cond.c.vector")


def test_unet(case):
    _, model, io, meta = case
    B, T = io["unet.image_only_indicator"].shape
    x = io["unet.x"].reshape(B, T, *io["unet.x"].shape[1:])
    with torch.no_grad():
        out = model.unet(
            x,
            io["unet.timesteps"].reshape(B, T)[:, 0],
            io["unet.context"].reshape(B, T, 1, -1)[:, 0],
            _unet_values(model, io).reshape(B, T, -1),  # per-frame vectors (sv3d_p: per-frame cameras)
        ).sample
    assert maxdiff(out.flatten(0, 1), io["unet.out"]) <= tol(meta, "unet.out")


def _cond_aug(model):
    return 0.02 if model.info.kind == "video" else 1e-5


def test_conditioner(case):
    _, model, io, meta = case
    image = io["cond.image_u8"].float() / 255 * 2 - 1
    with torch.no_grad():
        crossattn = encode_clip(model.image_encoder, image)
        concat = encode_condition(model.vae, image + _cond_aug(model) * io["cond.cond_aug_noise"])
        wide = io["cond_aa.image_u8"].float() / 255 * 2 - 1  # 48x672: the antialiased downscale path
        crossattn_aa = encode_clip(model.image_encoder, wide)
        concat_aa = encode_condition(model.vae, wide)
    assert maxdiff(crossattn, io["cond.c.crossattn"]) <= tol(meta, "cond.c.crossattn")
    assert maxdiff(concat, io["cond.c.concat"]) <= tol(meta, "cond.c.concat")
    assert maxdiff(crossattn_aa, io["cond_aa.c.crossattn"]) <= tol(meta, "cond_aa.c.crossattn")
    assert maxdiff(concat_aa, io["cond_aa.c.concat"]) <= tol(meta, "cond_aa.c.concat")


def test_decoder(case):
    _, model, io, meta = case
    z = io["decode.z"][None]  # (1, N, 4, h, w)
    out = decode_latents(model.vae, z, model.scaling_factor, chunk=z.shape[1])[0]
    assert maxdiff(out, io["decode.out"]) <= tol(meta, "decode.out")
    if "decode.out_chunk2" in io:  # temporal decoder: chunks are decoded as independent clips
        out2 = decode_latents(model.vae, z, model.scaling_factor, chunk=2)[0]
        assert maxdiff(out2, io["decode.out_chunk2"]) <= tol(meta, "decode.out")
        assert maxdiff(out2, out) > 1e-3  # and chunking really changes the result


def test_sampling(case):
    """The whole guided Euler loop from the recorded noise: per-step inputs, denoised outputs, latents, frames."""
    _, model, io, meta = case
    spec = meta["tests"]["sample"]
    T, steps = spec["T"], spec["num_steps"]
    image = io["cond.image_u8"].float() / 255 * 2 - 1
    with torch.no_grad():
        clip = encode_clip(model.image_encoder, image)
        concat = encode_condition(model.vae, image + _cond_aug(model) * io["cond.cond_aug_noise"])
    values = torch.stack([io[f"cond.batch.{n}"].double() for n in model.unet.vector_names], -1).float()
    cond = Conditioning(clip, concat, values[None])  # vector (1, T, F)

    sigmas = karras_sigmas(steps, 0.002, spec["discretization"]["sigma_max"])
    assert maxdiff(sigmas, io["sample.sigmas"]) <= 1e-5 * 700
    scales = guidance_scales(model.info.guidance, T, model.info.min_guidance, model.info.max_guidance)
    assert maxdiff(scales, io["sample.guider_scale"]) <= 1e-6

    x = initial_latents(io["sample.randn"][None], sigmas[0])
    assert maxdiff(x[0], io["sample.x_init"]) <= 1e-5 * 700
    seen = {}

    def record(i, x_in, denoised):
        seen[i] = (x_in[0].clone(), denoised[0].clone())

    latents = sample_euler(guided_denoiser(unet_network(model.unet), cond, scales), x, sigmas, callback=record)
    for i in range(steps):
        x_in, denoised = seen[i]
        ref_x = io[f"sample.step{i}.x_in"]
        assert maxdiff(x_in, ref_x) <= 1e-5 * max(1.0, ref_x.abs().max().item())
        limit = tol(meta, "sample.step0.denoised") if i == 0 else tol(meta, "sample.latents")
        assert maxdiff(denoised, io[f"sample.step{i}.denoised"]) <= limit, f"step {i}"
    assert maxdiff(latents[0], io["sample.latents"]) <= tol(meta, "sample.latents")

    decoded = decode_latents(model.vae, latents, model.scaling_factor, chunk=14)[0]
    index = io.get("sample.decoded_idx")
    if index is not None:
        decoded = decoded[index]
    assert maxdiff(decoded, io["sample.decoded"]) <= tol(meta, "sample.decoded")


def test_guidance_branch_matches_reference_uc_c(case):
    """Step 0's raw [uncond; cond] denoised batch: zeroed CLIP token and latent, the same vector."""
    _, model, io, meta = case
    spec = meta["tests"]["sample"]
    T = spec["T"]
    image = io["cond.image_u8"].float() / 255 * 2 - 1
    with torch.no_grad():
        clip = encode_clip(model.image_encoder, image)
        concat = encode_condition(model.vae, image + _cond_aug(model) * io["cond.cond_aug_noise"])
    values = torch.stack([io[f"cond.batch.{n}"].double() for n in model.unet.vector_names], -1).float()
    cond = Conditioning(clip, concat, values[None])
    both = Conditioning.cat([cond.unconditional(), cond])
    from svd3d.core.denoiser import denoise_vpred

    x = io["sample.step0.x_in"][None]
    sigma = io["sample.sigmas"][0]
    with torch.no_grad():
        raw = denoise_vpred(unet_network(model.unet), torch.cat([x, x]), sigma, both)
    assert maxdiff(raw.flatten(0, 1), io["sample.step0.raw_uc_c"]) <= tol(meta, "sample.step0.denoised")
    assert raw.shape[1] == T
