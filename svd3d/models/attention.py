"""Cross-attention to a single token, without the attention.

Every SVD / SV3D cross-attention attends to one token (the CLIP image embedding; the temporal blocks to the first
frame's). Softmax over one key is exactly 1, so every query receives that token's value: out = to_out(to_v(ctx)),
whatever the queries are. `SingleKeyAttnProcessor` computes just that (skipping the query and key projections and
the attention kernel) and falls back to diffusers' processor for anything else. In exact arithmetic the outputs
are identical; the query / key projections of these layers, and the norm that feeds only the queries, have a zero
gradient (float noise in practice), which `dead_cross_attention_parameters` lists so training can freeze them.
"""

from __future__ import annotations

import torch


class SingleKeyAttnProcessor:
    """diffusers attention processor: one-token cross-attention as a projection of that token's value."""

    def __init__(self):
        from diffusers.models.attention_processor import AttnProcessor2_0

        self.fallback = AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kw):
        simple = (
            encoder_hidden_states is not None
            and encoder_hidden_states.ndim == 3
            and encoder_hidden_states.shape[1] == 1
            and encoder_hidden_states.shape[0] == hidden_states.shape[0]
            and hidden_states.ndim == 3
            and attention_mask is None
            and attn.spatial_norm is None
            and attn.group_norm is None
        )
        if not simple:
            return self.fallback(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kw)
        context = attn.norm_encoder_hidden_states(encoder_hidden_states) if attn.norm_cross else encoder_hidden_states
        out = attn.to_out[1](attn.to_out[0](attn.to_v(context)))  # (B, 1, C)
        out = out.to(hidden_states.dtype).expand(hidden_states.shape[0], hidden_states.shape[1], out.shape[-1])
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


def use_single_key_cross_attention(unet: torch.nn.Module) -> int:
    """Give every cross-attention layer (attn2) of the UNet the single-key processor; returns how many."""
    count = 0
    for name, module in unet.named_modules():
        if name.endswith("attn2") and hasattr(module, "set_processor"):
            module.set_processor(SingleKeyAttnProcessor())
            count += 1
    return count


def dead_cross_attention_parameters(unet: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Parameters whose gradient is exactly zero when every cross-attention sees one token: attn2's query and key
    projections and norm2 (which feeds only attn2's queries) in every transformer block."""
    dead = []
    for module in unet.modules():
        attn2, norm2 = getattr(module, "attn2", None), getattr(module, "norm2", None)
        if attn2 is None or norm2 is None or not hasattr(attn2, "to_q"):
            continue
        for part in (attn2.to_q, attn2.to_k, norm2):
            dead.extend(part.parameters())
    return dead
