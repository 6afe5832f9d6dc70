"""v-prediction with EDM preconditioning (Karras et al. 2022 Table 1; Salimans & Ho 2022). The UNet never sees sigma,
only c_in * x and c_noise."""

from __future__ import annotations

from collections.abc import Callable

import torch

from svd3d.core.conditioning import Conditioning

# net(x_in (B, T, C_total, h, w), c_noise (B,), cond) -> v (B, T, C, h, w)
Network = Callable[[torch.Tensor, torch.Tensor, Conditioning], torch.Tensor]


def vpred_scalings(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(c_skip, c_out, c_in, c_noise) for v-prediction with sigma_data = 1: 1/(s^2+1), -s/sqrt(s^2+1),
    1/sqrt(s^2+1), 0.25 ln s."""
    c_skip = 1.0 / (sigma**2 + 1.0)
    c_out = -sigma / (sigma**2 + 1.0) ** 0.5
    c_in = 1.0 / (sigma**2 + 1.0) ** 0.5
    c_noise = 0.25 * sigma.log()
    return c_skip, c_out, c_in, c_noise


def denoise_vpred(net: Network, x: torch.Tensor, sigma: torch.Tensor, cond: Conditioning) -> torch.Tensor:
    """D(x; sigma) = c_skip x + c_out F(c_in x ++ concat, c_noise). x: (B, T, C, h, w); sigma: scalar tensor."""
    batch, frames = x.shape[:2]
    sigma = sigma.to(device=x.device, dtype=torch.float32)
    c_skip, c_out, c_in, c_noise = vpred_scalings(sigma)
    concat = cond.concat_latent[:, None].expand(batch, frames, *cond.concat_latent.shape[1:])
    x_in = torch.cat([x * c_in, concat.to(x.dtype)], dim=2)  # (B, T, C + C_cond, h, w)
    v = net(x_in, c_noise.expand(batch), cond)
    return x * c_skip + v.to(x.dtype) * c_out
