"""What the UNet is conditioned on, named explicitly (never routed by tensor rank)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Conditioning:
    """Conditioning for B videos of T frames.

    clip_embeds:   (B, 1, D) projected CLIP image embedding of the clean input image, one token per video.
    concat_latent: (B, C, h, w) unscaled VAE mean of the (noise-augmented) input image; repeated over frames and
                   concatenated to the noisy latent on the channel axis at every step.
    vector:        (B, T, F) raw per-frame scalar values (e.g. fps_id, motion_bucket_id, cond_aug, or
                   cond_aug, polar, azimuth); the UNet embeds them with its own per-field sinusoid widths.
    """

    clip_embeds: torch.Tensor
    concat_latent: torch.Tensor
    vector: torch.Tensor

    def unconditional(self) -> Conditioning:
        """The guidance branch: CLIP token and image latent zeroed, the same vector (as sgm and diffusers do)."""
        return Conditioning(torch.zeros_like(self.clip_embeds), torch.zeros_like(self.concat_latent), self.vector)

    @staticmethod
    def cat(items: list[Conditioning]) -> Conditioning:
        """Stack several conditionings on the batch axis (one UNet call for the cond/uncond pair)."""
        return Conditioning(
            torch.cat([c.clip_embeds for c in items]),
            torch.cat([c.concat_latent for c in items]),
            torch.cat([c.vector for c in items]),
        )
