"""The SVD training objective as small pure functions (EDM, Karras et al. 2022, with SVD's v-parameterisation).

For a clean latent y, noise n and sigma drawn log-normally (ln sigma ~ N(p_mean, p_std^2)):

    x = y + sigma n,   D(x; sigma) = c_skip x + c_out F(c_in x ++ concat, c_noise)     (svd3d.core.denoiser)
    loss = lambda(sigma) |D(x; sigma) - y|^2,   lambda(sigma) = (sigma^2 + 1) / sigma^2

lambda is the EDM weighting for sigma_data = 1 (1 / c_out^2), which makes the loss the plain MSE of the network's
output against its target: lambda |D - y|^2 = |F - (y - c_skip x) / c_out|^2, so every noise level weighs the same.
The conditioning frame is noise-augmented (`cond_aug`, also fed to the UNet in its vector) and, with probability
cond_dropout, the whole image conditioning is dropped exactly as the guidance's unconditional branch does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from svd3d.core.conditioning import Conditioning
from svd3d.core.denoiser import Network, vpred_scalings


@dataclass(frozen=True)
class NoiseDraw:
    """Everything random about one batch of B samples, drawn up front (so it is the same on any number of
    processes: each one slices its share)."""

    sigma: torch.Tensor  # (B,) training noise level
    noise: torch.Tensor  # (B, T, C, h, w) standard normal, for the latents
    cond_aug: torch.Tensor  # (B,) conditioning-frame noise level
    cond_noise: torch.Tensor  # (B, 3, H, W) standard normal, for the conditioning frame
    drop: torch.Tensor  # (B,) bool: use the unconditional branch

    def slice(self, start: int, stop: int) -> NoiseDraw:
        return NoiseDraw(*(t[start:stop] for t in (self.sigma, self.noise, self.cond_aug, self.cond_noise, self.drop)))


def draw_noise(
    generator: torch.Generator,
    batch: int,
    latent_shape: tuple[int, ...],
    image_shape: tuple[int, ...],
    *,
    p_mean: float,
    p_std: float,
    cond_aug_mean: float,
    cond_aug_std: float,
    cond_dropout: float,
) -> NoiseDraw:
    """Draw one batch's noise on the CPU from `generator` (latent_shape = (T, C, h, w), image_shape = (3, H, W))."""
    sigma = torch.exp(p_mean + p_std * torch.randn(batch, generator=generator))
    noise = torch.randn(batch, *latent_shape, generator=generator)
    cond_aug = torch.exp(cond_aug_mean + cond_aug_std * torch.randn(batch, generator=generator))
    cond_noise = torch.randn(batch, *image_shape, generator=generator)
    drop = torch.rand(batch, generator=generator) < cond_dropout
    return NoiseDraw(sigma, noise, cond_aug, cond_noise, drop)


def loss_weight(sigma: torch.Tensor) -> torch.Tensor:
    """lambda(sigma) = (sigma^2 + 1) / sigma^2: EDM's weighting for v-prediction with sigma_data = 1."""
    return (sigma**2 + 1.0) / sigma**2


def drop_conditioning(cond: Conditioning, drop: torch.Tensor) -> Conditioning:
    """Samples with drop=True get the unconditional branch's conditioning (CLIP token and image latent zeroed)."""
    keep = (~drop).to(cond.clip_embeds.dtype)
    return Conditioning(
        cond.clip_embeds * keep[:, None, None], cond.concat_latent * keep[:, None, None, None], cond.vector
    )


def diffusion_loss(net: Network, latents: torch.Tensor, cond: Conditioning, sigma: torch.Tensor, noise: torch.Tensor):
    """Per-sample weighted denoising loss (B,) for clean scaled latents (B, T, C, h, w), per-sample sigma (B,)."""
    s = sigma.to(latents.device, torch.float32).view(-1, 1, 1, 1, 1)
    c_skip, c_out, c_in, c_noise = vpred_scalings(s)
    x = latents + s * noise
    batch, frames = latents.shape[:2]
    concat = cond.concat_latent[:, None].expand(batch, frames, *cond.concat_latent.shape[1:])
    x_in = torch.cat([x * c_in, concat.to(x.dtype)], dim=2)
    v = net(x_in, c_noise.view(-1), cond)
    denoised = x * c_skip + v.float() * c_out
    return (loss_weight(s) * (denoised - latents) ** 2).flatten(1).mean(1)
