"""Sinusoidal embeddings of scalar conditioning values (timesteps, fps, motion, cond_aug, camera angles)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def sinusoidal_embedding(values: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[cos | sin] embedding of raw scalars (DDPM/ADM style, no frequency shift): (...,) -> (..., dim) float32.

    Frequencies are exp(-ln(max_period) * i / (dim/2)), i < dim/2, so a 512-wide embedding has different
    frequencies from a 256-wide one (SV3D_p's angles). Values are cast to float32 first, as sgm does.
    """
    if dim % 2:
        raise ValueError(f"sinusoidal embedding width must be even, got {dim}")
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=values.device) / half
    args = values.float()[..., None] * torch.exp(exponent)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def embed_vector(values: torch.Tensor, widths: Sequence[int]) -> torch.Tensor:
    """Per-frame vector conditioning: raw values (..., F) -> concatenated sinusoids (..., sum(widths)) float32."""
    if values.shape[-1] != len(widths):
        raise ValueError(f"vector has {values.shape[-1]} fields but the model expects {len(widths)} ({list(widths)})")
    return torch.cat([sinusoidal_embedding(values[..., i], w) for i, w in enumerate(widths)], dim=-1)
