"""svd3d.models.attention: single-token cross-attention computed without the attention, exact up to float32 rounding."""

from __future__ import annotations

import torch
from conftest import float32_reorder_bound

from svd3d.models.attention import (
    SingleKeyAttnProcessor,
    dead_cross_attention_parameters,
    use_single_key_cross_attention,
)
from svd3d.models.tiny import tiny_random_model


def _inputs(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 8, 8, 8, generator=g, dtype=dtype)
    t = torch.randn(2, generator=g, dtype=dtype)
    ctx = torch.randn(2, 1, 32, generator=g, dtype=dtype)
    vector = torch.randn(2, 5, 3, generator=g, dtype=dtype)
    return x, t, ctx, vector


def test_same_outputs_as_diffusers_attention():
    """Equal in real arithmetic (softmax over one key is 1, so attention is the value's projection); in float32
    the two paths sum in different orders, so they may differ in the last bits, by how much depends on the CPU's
    SIMD path (0.9e-6 on one x86-64 model, 1.3e-6 on another, output scale 1.3). The bound is a few ulps per
    term of the widest reduction (the 64-channel projections) on the output's scale: 2 * 64 * eps * 1.3 = 2e-5.
    A real defect (a missing bias, the wrong projection) moves the output by ~1e-2 and is caught."""
    unet = tiny_random_model("orbit").unet
    x, t, ctx, vector = _inputs()
    with torch.no_grad():
        before = unet(x, t, encoder_hidden_states=ctx, added_time_ids=vector, return_dict=False)[0]
        layers = sum(name.endswith("attn2") for name, _ in unet.named_modules())  # spatial + temporal, every block
        assert layers > 0 and use_single_key_cross_attention(unet) == layers
        after = unet(x, t, encoder_hidden_states=ctx, added_time_ids=vector, return_dict=False)[0]
    widest = max(unet.config.block_out_channels)
    torch.testing.assert_close(after, before, atol=float32_reorder_bound(before, widest), rtol=0)


def test_more_than_one_token_falls_back():
    from diffusers.models.attention_processor import Attention

    attn = Attention(16, cross_attention_dim=8, heads=2, dim_head=8)
    hidden, context = torch.randn(3, 10, 16), torch.randn(3, 4, 8)
    with torch.no_grad():
        expected = attn(hidden, encoder_hidden_states=context)
        attn.set_processor(SingleKeyAttnProcessor())
        torch.testing.assert_close(attn(hidden, encoder_hidden_states=context), expected)


def test_dead_parameters_really_have_zero_gradient():
    """In float64 the query / key / norm2 gradients of one-token cross-attention vanish with diffusers' own
    attention; every other parameter still gets a gradient with the single-key processor (DDP needs that)."""
    unet = tiny_random_model("orbit").unet.double().train().requires_grad_(True)
    x, t, ctx, vector = _inputs(torch.float64)
    unet(x, t, encoder_hidden_states=ctx, added_time_ids=vector, return_dict=False)[0].pow(2).mean().backward()
    dead = {id(p) for p in dead_cross_attention_parameters(unet)}
    assert dead
    largest = max(p.grad.abs().max().item() for p in unet.parameters() if id(p) in dead)
    assert largest < 1e-12
    unet.zero_grad(set_to_none=True)
    use_single_key_cross_attention(unet)
    unet(x, t, encoder_hidden_states=ctx, added_time_ids=vector, return_dict=False)[0].pow(2).mean().backward()
    assert all((p.grad is None) == (id(p) in dead) for p in unet.parameters())
