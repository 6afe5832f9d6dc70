"""Tiny random-weight models with the real architecture, built in memory from a seed.

They exercise every code path (temporal or per-frame decoder, per-frame camera vector) in seconds on a CPU, for
tests, benchmarks and smoke runs. Their output is structured noise: they are not trained.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from svd3d.models.bundle import SVDModel
from svd3d.models.info import RELEASED, ModelInfo
from svd3d.models.sgm_config import CLIPArch, UNetArch
from svd3d.models.sgm_convert import clip_config, unet_config

# 64 channels, not 32: GroupNorm(32) over 32 channels normalises each channel alone, which subtracts the per-channel
# time / vector embedding the res blocks add: a 32-channel UNet cannot see sigma, fps or cameras at all.
TINY_UNET = UNetArch(
    model_channels=64,
    channel_mult=(1, 1, 1),
    attention_resolutions=(2, 1),
    num_res_blocks=1,
    num_head_channels=32,
    context_dim=32,
)
TINY_CLIP = CLIPArch(width=48, layers=2, heads=3, patch_size=14, image_size=224, embed_dim=32)
TINY_VAE_CHANNELS = (32, 32, 32, 32)


def tiny_random_model(
    kind: str = "video", seed: int = 0, dtype: torch.dtype = torch.float32, unet: UNetArch = TINY_UNET
) -> SVDModel:
    """A seeded random model: kind 'video' (SVD layout, temporal decoder) or 'orbit' (SV3D_p layout)."""
    base = RELEASED["svd_xt" if kind == "video" else "sv3d_p"]
    info = replace(
        base,
        name=f"random-tiny-{kind}",
        num_frames=8 if kind == "video" else 21,
        num_steps=8,
        width=64,
        height=64,
        extra={"note": "random weights: for tests and benchmarks only"},
    )
    model = build_model(info, unet, TINY_VAE_CHANNELS, 2, TINY_CLIP, seed)
    if dtype != torch.float32:
        for module in model.modules().values():
            module.to(dtype)
    return model.eval()


def build_model(
    info: ModelInfo,
    unet: UNetArch,
    vae_channels: tuple[int, ...],
    vae_blocks: int,
    clip: CLIPArch,
    seed: int,
    *,
    fingerprint: str | None = None,
) -> SVDModel:
    """A new float32 model with the real classes and seeded random weights: PerFrameUNet with `info`'s vector
    fields, a temporal-decoder VAE (info.decoder "temporal") or a per-frame one ("image"), CLIP's vision tower.
    The VAE halves the image len(vae_channels) - 1 times."""
    from diffusers import AutoencoderKL, AutoencoderKLTemporalDecoder
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from svd3d.models.unet import PerFrameUNet  # subclasses diffusers' UNet: lazy, with diffusers

    adm = sum(w for _, w in info.vector_fields)
    torch.manual_seed(seed)
    unet_module = PerFrameUNet(**unet_config(replace(unet, adm_in_channels=adm), info.vector_fields, info.num_frames))
    vae_args = dict(
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * len(vae_channels),
        block_out_channels=list(vae_channels),
        layers_per_block=vae_blocks,
        latent_channels=4,
    )
    if info.decoder == "temporal":
        vae = AutoencoderKLTemporalDecoder(**vae_args)
    else:
        vae = AutoencoderKL(
            **vae_args, up_block_types=["UpDecoderBlock2D"] * len(vae_channels), use_post_quant_conv=False
        )
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**clip_config(clip)))
    return SVDModel(unet_module, vae, image_encoder, info, source=info.name, fingerprint=fingerprint or f"seed{seed}")
