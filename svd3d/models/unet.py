"""The spatio-temporal UNet of SVD / SV3D with a per-frame vector-conditioning path.

diffusers' ``UNetSpatioTemporalConditionModel`` embeds one vector per video with one sinusoid width, so it cannot
express SV3D_p, whose every frame carries its own camera and whose angles use 512-wide sinusoids (models/info.py's
SV3D_P_VECTOR_FIELDS).
``PerFrameUNet`` keeps every diffusers block and weight name and owns only the embedding path: each frame gets
``add_embedding(concat_k sinusoid(value_k, width_k))``. With one vector per video it computes exactly what the
stock model computes, and it loads stock SVD / SVD-XT UNet folders as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers import UNetSpatioTemporalConditionModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.resnet import SpatioTemporalResBlock
from diffusers.models.unets.unet_spatio_temporal_condition import UNetSpatioTemporalConditionOutput

from svd3d.core.embeddings import embed_vector
from svd3d.models.info import SVD_VECTOR_FIELDS


def stock_vector_fields(addition_time_embed_dim: int, projection_dim: int) -> tuple[tuple[str, int], ...]:
    """The fields a stock diffusers SVD UNet config implies: three of `addition_time_embed_dim` each."""
    if projection_dim != 3 * addition_time_embed_dim:
        raise ValueError(
            f"a UNet config without vector_fields must embed 3 values of {addition_time_embed_dim} "
            f"(fps, motion bucket, noise aug), but projection_class_embeddings_input_dim is {projection_dim}"
        )
    return tuple((name, addition_time_embed_dim) for name, _ in SVD_VECTOR_FIELDS)


class PerFrameUNet(UNetSpatioTemporalConditionModel):
    """UNetSpatioTemporalConditionModel whose vector conditioning may differ per frame and per field width.

    Config adds ``vector_fields``: ordered ``[name, sinusoid_width]`` pairs whose widths sum to
    ``projection_class_embeddings_input_dim`` (e.g. SV3D_p: cond_aug 256, polars_rad 512, azimuths_rad 512),
    and ``resnet_eps``, the GroupNorm epsilon of the res blocks: 1e-5 as in sgm (default), 1e-6 as in diffusers.
    """

    @register_to_config
    def __init__(
        self,
        sample_size: int | None = None,
        in_channels: int = 8,
        out_channels: int = 4,
        down_block_types: Sequence[str] = (
            "CrossAttnDownBlockSpatioTemporal",
            "CrossAttnDownBlockSpatioTemporal",
            "CrossAttnDownBlockSpatioTemporal",
            "DownBlockSpatioTemporal",
        ),
        up_block_types: Sequence[str] = (
            "UpBlockSpatioTemporal",
            "CrossAttnUpBlockSpatioTemporal",
            "CrossAttnUpBlockSpatioTemporal",
            "CrossAttnUpBlockSpatioTemporal",
        ),
        block_out_channels: Sequence[int] = (320, 640, 1280, 1280),
        addition_time_embed_dim: int = 256,
        projection_class_embeddings_input_dim: int = 768,
        layers_per_block: int | Sequence[int] = 2,
        cross_attention_dim: int | Sequence[int] = 1024,
        transformer_layers_per_block: int | Sequence[int] = 1,
        num_attention_heads: int | Sequence[int] = (5, 10, 20, 20),
        num_frames: int = 25,
        vector_fields: Sequence[Sequence] | None = None,
        resnet_eps: float = 1e-5,
    ):
        super().__init__(
            sample_size=sample_size,
            in_channels=in_channels,
            out_channels=out_channels,
            down_block_types=tuple(down_block_types),
            up_block_types=tuple(up_block_types),
            block_out_channels=tuple(block_out_channels),
            addition_time_embed_dim=addition_time_embed_dim,
            projection_class_embeddings_input_dim=projection_class_embeddings_input_dim,
            layers_per_block=layers_per_block,
            cross_attention_dim=cross_attention_dim,
            transformer_layers_per_block=transformer_layers_per_block,
            num_attention_heads=num_attention_heads,
            num_frames=num_frames,
        )
        if vector_fields is None:
            fields = stock_vector_fields(addition_time_embed_dim, projection_class_embeddings_input_dim)
        else:
            fields = tuple((str(name), int(width)) for name, width in vector_fields)
        if sum(w for _, w in fields) != projection_class_embeddings_input_dim:
            raise ValueError(
                f"vector_fields {list(fields)} sum to {sum(w for _, w in fields)} but "
                f"projection_class_embeddings_input_dim is {projection_class_embeddings_input_dim}"
            )
        self.vector_fields = fields
        self.set_resnet_eps(resnet_eps)

    def set_resnet_eps(self, eps: float) -> None:
        """sgm's res blocks normalise with GroupNorm eps 1e-5 (the released weights were trained so); diffusers'
        spatio-temporal blocks hard-code 1e-6, which moves UNet outputs by ~5e-5 on the parity fixtures (4e-6 with 1e-5)."""
        for block in self.modules():
            if isinstance(block, SpatioTemporalResBlock):
                for norm in block.modules():
                    if isinstance(norm, torch.nn.GroupNorm):
                        norm.eps = eps

    @property
    def vector_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.vector_fields)

    def embed_vector(self, values: torch.Tensor) -> torch.Tensor:
        """Raw per-frame values (..., F) -> sinusoid features (..., adm) float32 (sgm's `c.vector`)."""
        return embed_vector(values, [w for _, w in self.vector_fields])

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        return_dict: bool = True,
    ) -> UNetSpatioTemporalConditionOutput | tuple:
        """sample (B, T, C, H, W); timestep (B,) or scalar (c_noise); encoder_hidden_states (B, 1, D);
        added_time_ids: raw vector values, (B, F) shared by all frames (stock SVD) or (B, T, F) per frame."""
        batch, frames = sample.shape[:2]
        forward_upsample_size = any(s % 2**self.num_upsamplers != 0 for s in sample.shape[-2:])

        # 1. time + per-frame vector embedding -> emb (B*T, 4*C0)
        timesteps = torch.as_tensor(timestep, device=sample.device)
        timesteps = timesteps.reshape(-1).expand(batch) if timesteps.numel() == 1 else timesteps.reshape(batch)
        t_emb = self.time_embedding(self.time_proj(timesteps).to(dtype=sample.dtype))  # (B, 4*C0)
        values = added_time_ids
        if values.ndim == 2:
            values = values[:, None].expand(batch, frames, values.shape[-1])
        vec = self.embed_vector(values.reshape(batch * frames, -1)).to(t_emb.dtype)  # (B*T, adm)
        emb = t_emb.repeat_interleave(frames, dim=0) + self.add_embedding(vec)

        sample = sample.flatten(0, 1)  # (B*T, C, H, W)
        context = encoder_hidden_states.repeat_interleave(frames, dim=0)  # (B*T, 1, D)
        image_only_indicator = torch.zeros(batch, frames, dtype=sample.dtype, device=sample.device)

        # 2. down
        sample = self.conv_in(sample)
        skips = (sample,)
        for block in self.down_blocks:
            extra = {"encoder_hidden_states": context} if getattr(block, "has_cross_attention", False) else {}
            sample, res = block(hidden_states=sample, temb=emb, image_only_indicator=image_only_indicator, **extra)
            skips += res

        # 3. mid
        sample = self.mid_block(
            hidden_states=sample, temb=emb, encoder_hidden_states=context, image_only_indicator=image_only_indicator
        )

        # 4. up
        for i, block in enumerate(self.up_blocks):
            res, skips = skips[-len(block.resnets) :], skips[: -len(block.resnets)]
            upsample_size = skips[-1].shape[2:] if forward_upsample_size and i < len(self.up_blocks) - 1 else None
            extra = {"encoder_hidden_states": context} if getattr(block, "has_cross_attention", False) else {}
            sample = block(
                hidden_states=sample,
                temb=emb,
                res_hidden_states_tuple=res,
                upsample_size=upsample_size,
                image_only_indicator=image_only_indicator,
                **extra,
            )

        # 5. out
        sample = self.conv_out(self.conv_act(self.conv_norm_out(sample)))
        sample = sample.reshape(batch, frames, *sample.shape[1:])
        if not return_dict:
            return (sample,)
        return UNetSpatioTemporalConditionOutput(sample=sample)
