"""sgm single-file checkpoint -> diffusers / transformers modules, streamed tensor by tensor.

Key layout of Stability's released checkpoints (the tiny reference fixtures the parity tests load have the same). Three
prefixes are read:
  model.diffusion_model.*                          -> PerFrameUNet
  conditioner.embedders.<k>.encoder.{encoder,quant_conv}.*  + first_stage_model.decoder.*  -> one VAE
      (the conditioner's copy encodes the conditioning image; the first stage's decoder decodes the samples)
  conditioner.embedders.0.open_clip.model.visual.* -> transformers CLIPVisionModelWithProjection
Everything else (text-tower leftovers, the conditioner's unused decoder, the unused first-stage encoder) is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import torch

from svd3d.models.sgm_config import CLIPArch, SgmArch, UNetArch, VAEArch

UNET = "model.diffusion_model."
CLIP = "conditioner.embedders.0.open_clip.model.visual."
DECODER = "first_stage_model.decoder."

Rule = tuple[str, str, Callable[[str], str]]  # (sgm prefix, diffusers prefix, rename of the rest of the key)


def _same(rest: str) -> str:
    return rest


def _subs(pairs: list[tuple[str, str]]) -> Callable[[str], str]:
    compiled = [(re.compile(rf"^{re.escape(a)}(?=\.|$)"), b) for a, b in pairs]

    def rename(rest: str) -> str:
        for pattern, repl in compiled:
            if pattern.match(rest):
                return pattern.sub(repl, rest, count=1)
        return rest

    return rename


# ---------------------------------------------------------------------------------------------------- UNet

_unet_resnet = _subs(
    [(f"time_stack.{a}", f"temporal_res_block.{b}") for a, b in [
        ("in_layers.0", "norm1"), ("in_layers.2", "conv1"), ("emb_layers.1", "time_emb_proj"),
        ("out_layers.0", "norm2"), ("out_layers.3", "conv2"),
    ]]
    + [(a, f"spatial_res_block.{b}") for a, b in [
        ("in_layers.0", "norm1"), ("in_layers.2", "conv1"), ("emb_layers.1", "time_emb_proj"),
        ("out_layers.0", "norm2"), ("out_layers.3", "conv2"), ("skip_connection", "conv_shortcut"),
    ]]
)  # fmt: skip


def _unet_transformer(rest: str) -> str:
    rest = re.sub(r"^time_stack\.", "temporal_transformer_blocks.", rest)
    return re.sub(r"^time_pos_embed\.(\d)", lambda m: f"time_pos_embed.linear_{1 if m[1] == '0' else 2}", rest)


def unet_has_attention(arch: UNetArch) -> list[bool]:
    """Which resolution levels carry attention (sgm counts levels by their downsampling factor 1, 2, 4, ...)."""
    return [2**level in arch.attention_resolutions for level in range(len(arch.channel_mult))]


def unet_rules(arch: UNetArch) -> list[Rule]:
    levels, nrb, attn = len(arch.channel_mult), arch.num_res_blocks, unet_has_attention(arch)
    rules: list[Rule] = [
        ("time_embed.0", "time_embedding.linear_1", _same),
        ("time_embed.2", "time_embedding.linear_2", _same),
        ("label_emb.0.0", "add_embedding.linear_1", _same),
        ("label_emb.0.2", "add_embedding.linear_2", _same),
        ("input_blocks.0.0", "conv_in", _same),
        ("out.0", "conv_norm_out", _same),
        ("out.2", "conv_out", _same),
        ("middle_block.0", "mid_block.resnets.0", _unet_resnet),
        ("middle_block.1", "mid_block.attentions.0", _unet_transformer),
        ("middle_block.2", "mid_block.resnets.1", _unet_resnet),
    ]
    idx = 1
    for level in range(levels):
        for j in range(nrb):
            rules.append((f"input_blocks.{idx}.0", f"down_blocks.{level}.resnets.{j}", _unet_resnet))
            if attn[level]:
                rules.append((f"input_blocks.{idx}.1", f"down_blocks.{level}.attentions.{j}", _unet_transformer))
            idx += 1
        if level < levels - 1:
            rules.append((f"input_blocks.{idx}.0.op", f"down_blocks.{level}.downsamplers.0.conv", _same))
            idx += 1
    idx = 0
    for k in range(levels):  # diffusers up block k is sgm level levels-1-k
        level = levels - 1 - k
        for j in range(nrb + 1):
            rules.append((f"output_blocks.{idx}.0", f"up_blocks.{k}.resnets.{j}", _unet_resnet))
            sub = 1
            if attn[level]:
                rules.append((f"output_blocks.{idx}.1", f"up_blocks.{k}.attentions.{j}", _unet_transformer))
                sub = 2
            if j == nrb and level > 0:
                rules.append((f"output_blocks.{idx}.{sub}.conv", f"up_blocks.{k}.upsamplers.0.conv", _same))
            idx += 1
    return [(UNET + a, b, f) for a, b, f in rules]


def unet_config(arch: UNetArch, vector_fields, num_frames: int) -> dict:
    attn = unet_has_attention(arch)
    channels = [arch.model_channels * m for m in arch.channel_mult]
    return {
        "in_channels": arch.in_channels,
        "out_channels": arch.out_channels,
        "down_block_types": ["CrossAttnDownBlockSpatioTemporal" if a else "DownBlockSpatioTemporal" for a in attn],
        "up_block_types": ["CrossAttnUpBlockSpatioTemporal" if a else "UpBlockSpatioTemporal" for a in reversed(attn)],
        "block_out_channels": channels,
        "layers_per_block": arch.num_res_blocks,
        "cross_attention_dim": arch.context_dim,
        "transformer_layers_per_block": arch.transformer_depth,
        "num_attention_heads": [c // arch.num_head_channels for c in channels],
        "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": arch.adm_in_channels,
        "num_frames": num_frames,
        "vector_fields": [list(f) for f in vector_fields],
    }


# ----------------------------------------------------------------------------------------------------- VAE

_vae_attn = _subs([("norm", "group_norm"), ("q", "to_q"), ("k", "to_k"), ("v", "to_v"), ("proj_out", "to_out.0")])
_vae_resnet = _subs([("nin_shortcut", "conv_shortcut")])
_vae_video_resnet = _subs(
    [(f"time_stack.{a}", f"temporal_res_block.{b}") for a, b in [
        ("in_layers.0", "norm1"), ("in_layers.2", "conv1"), ("out_layers.0", "norm2"), ("out_layers.3", "conv2"),
    ]]
    + [("mix_factor", "time_mixer.mix_factor")]
    + [(a, f"spatial_res_block.{a}") for a in ("norm1", "conv1", "norm2", "conv2")]
    + [("nin_shortcut", "spatial_res_block.conv_shortcut")]
)  # fmt: skip


def encoder_rules(arch: VAEArch, prefix: str) -> list[Rule]:
    """The conditioner's AutoencoderKLModeOnly: encoder + quant_conv (its decoder copy is unused)."""
    rules: list[Rule] = [
        ("encoder.conv_in", "encoder.conv_in", _same),
        ("encoder.norm_out", "encoder.conv_norm_out", _same),
        ("encoder.conv_out", "encoder.conv_out", _same),
        ("encoder.mid.block_1", "encoder.mid_block.resnets.0", _vae_resnet),
        ("encoder.mid.attn_1", "encoder.mid_block.attentions.0", _vae_attn),
        ("encoder.mid.block_2", "encoder.mid_block.resnets.1", _vae_resnet),
        ("quant_conv", "quant_conv", _same),
    ]
    for level in range(len(arch.ch_mult)):
        for j in range(arch.num_res_blocks):
            rules.append((f"encoder.down.{level}.block.{j}", f"encoder.down_blocks.{level}.resnets.{j}", _vae_resnet))
        if level < len(arch.ch_mult) - 1:
            rules.append(
                (f"encoder.down.{level}.downsample.conv", f"encoder.down_blocks.{level}.downsamplers.0.conv", _same)
            )
    return [(prefix + a, b, f) for a, b, f in rules]


def decoder_rules(arch: VAEArch, temporal: bool) -> list[Rule]:
    resnet = _vae_video_resnet if temporal else _vae_resnet
    rules: list[Rule] = [
        ("conv_in", "decoder.conv_in", _same),
        ("norm_out", "decoder.conv_norm_out", _same),
        ("conv_out.time_mix_conv", "decoder.time_conv_out", _same),
        ("conv_out", "decoder.conv_out", _same),
        ("mid.block_1", "decoder.mid_block.resnets.0", resnet),
        ("mid.attn_1", "decoder.mid_block.attentions.0", _vae_attn),
        ("mid.block_2", "decoder.mid_block.resnets.1", resnet),
    ]
    levels = len(arch.ch_mult)
    for level in range(levels):  # sgm up.<level> is diffusers up_blocks.<levels-1-level>
        k = levels - 1 - level
        for j in range(arch.num_res_blocks + 1):
            rules.append((f"up.{level}.block.{j}", f"decoder.up_blocks.{k}.resnets.{j}", resnet))
        if level > 0:
            rules.append((f"up.{level}.upsample.conv", f"decoder.up_blocks.{k}.upsamplers.0.conv", _same))
    return [(DECODER + a, b, f) for a, b, f in rules]


def vae_config(sgm: SgmArch) -> tuple[str, dict]:
    """(diffusers class name, config) of the one VAE holding the conditioning encoder and the decoder."""
    enc, dec = sgm.encoder, sgm.decoder
    if (enc.ch, enc.ch_mult, enc.num_res_blocks, enc.z_channels) != (
        dec.ch,
        dec.ch_mult,
        dec.num_res_blocks,
        dec.z_channels,
    ):
        raise ValueError(
            f"the conditioning encoder {enc} and the decoder {dec} differ in shape; svd3d needs them equal"
        )
    channels = [enc.ch * m for m in enc.ch_mult]
    common = {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * len(channels),
        "block_out_channels": channels,
        "layers_per_block": enc.num_res_blocks,
        "latent_channels": enc.z_channels,
        "scaling_factor": sgm.scale_factor,
    }
    if sgm.info.decoder == "temporal":
        return "AutoencoderKLTemporalDecoder", {**common, "force_upcast": True}
    return "AutoencoderKL", {
        **common,
        "up_block_types": ["UpDecoderBlock2D"] * len(channels),
        "norm_num_groups": 32,
        "force_upcast": True,
        "use_quant_conv": True,
        "use_post_quant_conv": False,  # sgm's first stage has no post_quant_conv
    }


# ---------------------------------------------------------------------------------------------------- CLIP


def clip_config(arch: CLIPArch) -> dict:
    return {
        "hidden_size": arch.width,
        "intermediate_size": int(arch.width * arch.mlp_ratio),
        "num_hidden_layers": arch.layers,
        "num_attention_heads": arch.heads,
        "patch_size": arch.patch_size,
        "image_size": arch.image_size,
        "projection_dim": arch.embed_dim,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-5,
        "num_channels": 3,
    }


def clip_tensors(read: Callable[[str], torch.Tensor], arch: CLIPArch) -> Iterator[tuple[str, torch.Tensor]]:
    """open_clip VisionTransformer -> transformers CLIPVisionModelWithProjection, tensor by tensor."""
    v = "vision_model."
    yield v + "embeddings.class_embedding", read(CLIP + "class_embedding")
    yield v + "embeddings.patch_embedding.weight", read(CLIP + "conv1.weight")
    yield v + "embeddings.position_embedding.weight", read(CLIP + "positional_embedding")
    for part in ("weight", "bias"):
        yield f"{v}pre_layrnorm.{part}", read(f"{CLIP}ln_pre.{part}")
        yield f"{v}post_layernorm.{part}", read(f"{CLIP}ln_post.{part}")
    yield "visual_projection.weight", read(CLIP + "proj").t().contiguous()  # open_clip computes x @ proj
    for i in range(arch.layers):
        src, dst = f"{CLIP}transformer.resblocks.{i}.", f"{v}encoder.layers.{i}."
        for part in ("weight", "bias"):
            q, k, val = read(f"{src}attn.in_proj_{part}").chunk(3, dim=0)
            yield f"{dst}self_attn.q_proj.{part}", q.contiguous()
            yield f"{dst}self_attn.k_proj.{part}", k.contiguous()
            yield f"{dst}self_attn.v_proj.{part}", val.contiguous()
            yield f"{dst}self_attn.out_proj.{part}", read(f"{src}attn.out_proj.{part}")
            yield f"{dst}layer_norm1.{part}", read(f"{src}ln_1.{part}")
            yield f"{dst}layer_norm2.{part}", read(f"{src}ln_2.{part}")
            yield f"{dst}mlp.fc1.{part}", read(f"{src}mlp.c_fc.{part}")
            yield f"{dst}mlp.fc2.{part}", read(f"{src}mlp.c_proj.{part}")


# -------------------------------------------------------------------------------------------------- rename


def apply_rules(keys, rules: list[Rule]) -> dict[str, str]:
    """{diffusers key: sgm key} for every sgm key under a rule's prefix (longest prefix wins)."""
    ordered = sorted(rules, key=lambda r: len(r[0]), reverse=True)
    out: dict[str, str] = {}
    for key in keys:
        for src, dst, rename in ordered:
            if key == src or key.startswith(src + "."):
                rest = key[len(src) + 1 :]
                out[f"{dst}.{rename(rest)}" if rest else dst] = key
                break
    return out
