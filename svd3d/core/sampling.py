"""EDM / Karras noise levels and the Euler sampler. A sampler only knows ``denoise(x, sigma) -> x0``."""

from __future__ import annotations

from collections.abc import Callable

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def karras_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 700.0, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. 2022 (arXiv 2206.00364) eq. 5: n noise levels from sigma_max down to sigma_min, then a final 0.

    Returns (n + 1,) float32.
    """
    if n < 1:
        raise ValueError(f"number of steps must be at least 1, got {n}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    min_inv, max_inv = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (max_inv + ramp * (min_inv - max_inv)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)]).float()


def initial_latents(noise: torch.Tensor, sigma_max: float | torch.Tensor) -> torch.Tensor:
    """Scale unit noise to the first noise level: eps * sqrt(1 + sigma_max^2), as SVD does (not eps * sigma_max)."""
    return noise * (1.0 + float(sigma_max) ** 2) ** 0.5


@torch.no_grad()
def sample_euler(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Euler method for the probability-flow ODE (Karras et al. 2022, Alg. 2 without churn).

    x: (B, T, C, h, w) at noise level sigmas[0]; sigmas: (n + 1,) decreasing, ending in 0.
    callback(i, x_in, denoised) is called once per step, for progress bars and parity checks.
    """
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = denoise(x, sigma)
        if callback is not None:
            callback(i, x, denoised)
        d = (x - denoised) / sigma
        x = x + (sigma_next - sigma) * d
    return x
