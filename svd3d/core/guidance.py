"""Per-frame classifier-free guidance: schedules, and a guided denoiser that makes one batched cond/uncond call."""

from __future__ import annotations

from typing import Literal

import torch

from svd3d.core.conditioning import Conditioning
from svd3d.core.denoiser import Network, denoise_vpred
from svd3d.core.sampling import Denoiser

GuidanceSchedule = Literal["linear", "triangle", "constant"]
GUIDANCE_SCHEDULES: tuple[str, ...] = ("linear", "triangle", "constant")


def guidance_scales(schedule: GuidanceSchedule, num_frames: int, min_scale: float, max_scale: float) -> torch.Tensor:
    """Per-frame guidance scales (T,) float32.

    linear:   min -> max over the frames (SVD: later frames drift further from the input, so get more guidance).
    triangle: min + (max-min) * 2|v - floor(v + 1/2)|, v = t/(T-1): min at both ends, max mid-orbit (SV3D).
    constant: max everywhere.
    """
    if schedule == "linear":
        return torch.linspace(min_scale, max_scale, num_frames, dtype=torch.float32)
    if schedule == "triangle":
        v = torch.linspace(0, 1, num_frames, dtype=torch.float64)
        tri = 2 * (v - torch.floor(v + 0.5)).abs()
        return (min_scale + (max_scale - min_scale) * tri).float()
    if schedule == "constant":
        return torch.full((num_frames,), float(max_scale), dtype=torch.float32)
    raise ValueError(f"unknown guidance schedule {schedule!r}; use one of {', '.join(GUIDANCE_SCHEDULES)}")


def guided_denoiser(net: Network, cond: Conditioning, scales: torch.Tensor) -> Denoiser:
    """denoise(x, sigma) with per-frame guidance D = D_u + s_t (D_c - D_u), one UNet call on [uncond; cond].

    scales: (T,) per-frame guidance. Where every scale is exactly 1 the result is D_c, so the unconditional
    half is skipped and the step costs one half-size call.
    """
    if bool((scales == 1).all()):
        return lambda x, sigma: denoise_vpred(net, x, sigma, cond)

    both = Conditioning.cat([cond.unconditional(), cond])
    s = scales.view(1, -1, 1, 1, 1)

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        d_u, d_c = denoise_vpred(net, torch.cat([x, x]), sigma, both).chunk(2)
        return d_u + s.to(x.device, x.dtype) * (d_c - d_u)

    return denoise
