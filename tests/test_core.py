"""The diffusion core's pure functions against their formulas."""

from __future__ import annotations

import math

import pytest
import torch

from svd3d.core import Conditioning, guidance_scales, guided_denoiser, initial_latents, karras_sigmas, sample_euler
from svd3d.core.denoiser import vpred_scalings
from svd3d.core.embeddings import embed_vector, sinusoidal_embedding


def test_karras_sigmas_formula():
    s = karras_sigmas(4, 0.002, 700.0, 7.0)
    assert s.shape == (5,) and s[-1] == 0
    assert math.isclose(s[0].item(), 700.0, rel_tol=1e-6) and math.isclose(s[3].item(), 0.002, rel_tol=1e-5)
    # the EDM sigmas sgm recorded for its 4-step reference run
    ref = torch.tensor([700.00012, 70.540863, 2.2691193, 0.0020000036, 0.0])
    assert torch.allclose(s, ref, rtol=1e-5)
    assert torch.all(s[:-1] > s[1:])


def test_initial_noise_scale():
    eps = torch.ones(3)
    assert torch.allclose(initial_latents(eps, 700.0), torch.full((3,), math.sqrt(1 + 700.0**2)))


def test_vpred_scalings():
    sigma = torch.tensor(2.0)
    c_skip, c_out, c_in, c_noise = vpred_scalings(sigma)
    assert math.isclose(c_skip.item(), 1 / 5, rel_tol=1e-6) and math.isclose(
        c_out.item(), -2 / math.sqrt(5), rel_tol=1e-6
    )
    assert math.isclose(c_in.item(), 1 / math.sqrt(5), rel_tol=1e-6)
    assert math.isclose(c_noise.item(), 0.25 * math.log(2.0), rel_tol=1e-6)


def test_guidance_schedules():
    assert torch.allclose(guidance_scales("linear", 4, 1.0, 2.5), torch.tensor([1.0, 1.5, 2.0, 2.5]))
    tri = guidance_scales("triangle", 21, 1.0, 2.5)
    assert tri[0] == 1.0 and tri[-1] == 1.0 and math.isclose(tri[10].item(), 2.5)
    assert torch.all(tri[:10] < tri[1:11]) and torch.allclose(tri, tri.flip(0))
    assert torch.all(guidance_scales("constant", 3, 1.0, 2.0) == 2.0)
    with pytest.raises(ValueError, match="cosine"):
        guidance_scales("cosine", 3, 1.0, 2.0)


def test_sinusoid_widths_differ_and_order_is_cos_sin():
    v = torch.tensor([0.7])
    e256, e512 = sinusoidal_embedding(v, 256), sinusoidal_embedding(v, 512)
    assert e256.shape == (1, 256) and e512.shape == (1, 512)
    assert math.isclose(e256[0, 0].item(), math.cos(0.7), rel_tol=1e-6)
    assert math.isclose(e256[0, 128].item(), math.sin(0.7), rel_tol=1e-6)
    freq1_256, freq1_512 = math.exp(-math.log(10000) / 128), math.exp(-math.log(10000) / 256)
    assert math.isclose(e256[0, 1].item(), math.cos(0.7 * freq1_256), rel_tol=1e-6)
    assert math.isclose(e512[0, 1].item(), math.cos(0.7 * freq1_512), rel_tol=1e-6)
    vec = embed_vector(torch.tensor([[1.0, 2.0, 3.0]]), [256, 512, 512])
    assert vec.shape == (1, 1280) and torch.allclose(vec[:, 256:768], sinusoidal_embedding(torch.tensor([2.0]), 512))


def test_euler_solves_a_known_ode():
    """With a perfect denoiser for a point mass at x0, Euler lands exactly on x0 after the last step."""
    x0 = torch.tensor([[1.5, -2.0]])
    x = x0 + 80.0 * torch.randn(1, 2, generator=torch.Generator().manual_seed(0))
    sigmas = karras_sigmas(10, 0.002, 80.0)
    steps = []
    out = sample_euler(lambda x, s: x0.expand_as(x), x, sigmas, callback=lambda i, xi, d: steps.append(i))
    assert torch.allclose(out, x0, atol=1e-5) and steps == list(range(10))


def test_guided_denoiser_makes_one_batched_call_and_skips_when_unguided():
    calls = []

    def net(x_in, c_noise, cond):
        calls.append(x_in.shape[0])
        # "cond" output = 1 where the clip token is non-zero, else 0 (so D_c - D_u is measurable)
        return (
            cond.clip_embeds.abs().sum(dim=(1, 2)).gt(0).float().view(-1, 1, 1, 1, 1).expand(*x_in.shape[:2], 2, 1, 1)
        )

    cond = Conditioning(torch.ones(1, 1, 4), torch.zeros(1, 2, 1, 1), torch.zeros(1, 3, 1))
    x = torch.zeros(1, 3, 2, 1, 1)
    sigma = torch.tensor(1.0)
    scales = torch.tensor([1.0, 2.0, 3.0])
    d = guided_denoiser(net, cond, scales)(x, sigma)
    assert calls == [2]  # one call on [uncond; cond]
    _, c_out, _, _ = vpred_scalings(sigma)
    assert torch.allclose(d[0, :, 0, 0, 0], c_out * scales)  # D_u + s (D_c - D_u), D_u = 0
    calls.clear()
    guided_denoiser(net, cond, torch.ones(3))(x, sigma)
    assert calls == [1]  # all scales 1: the unconditional half is skipped


def test_unconditional_zeroes_image_keeps_vector():
    cond = Conditioning(torch.ones(1, 1, 4), torch.ones(1, 4, 2, 2), torch.full((1, 3, 2), 5.0))
    u = cond.unconditional()
    assert u.clip_embeds.abs().sum() == 0 and u.concat_latent.abs().sum() == 0 and torch.equal(u.vector, cond.vector)
