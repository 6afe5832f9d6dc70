"""VAE helpers: the conditioning latent and chunked decoding (temporal or per-frame decoders)."""

from __future__ import annotations

import inspect

import torch


def encode_condition(vae, image: torch.Tensor) -> torch.Tensor:
    """Unscaled VAE mean of image (B, 3, H, W) in [-1, 1] -> (B, C, H/8, W/8). Not multiplied by the scale factor:
    SVD concatenates the raw mean to the noisy latent (as sgm does; tests/test_sgm_parity.py)."""
    return vae.encode(image.to(vae.dtype)).latent_dist.mode()


def latent_factor(vae) -> int:
    """How many pixels one latent cell covers per side: 2 ** (levels - 1); 8 for every released model."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def decoder_takes_frames(vae) -> bool:
    """True for the temporal video decoder (SVD), False for a per-frame image decoder (SV3D)."""
    return "num_frames" in inspect.signature(vae.decode).parameters


@torch.no_grad()
def decode_latents(vae, latents: torch.Tensor, scaling_factor: float, chunk: int) -> torch.Tensor:
    """Decode (B, T, C, h, w) scaled latents to (B, T, 3, H, W) in about [-1, 1], float32.

    The temporal decoder sees `chunk` frames at a time as independent clips (no overlap): larger chunks are more
    temporally consistent and use more memory. A per-frame decoder just batches `chunk` frames.
    """
    batch, frames = latents.shape[:2]
    flat = latents.flatten(0, 1) / scaling_factor
    temporal = decoder_takes_frames(vae)
    out = []
    for b in range(batch):
        video = flat[b * frames : (b + 1) * frames]
        for i in range(0, frames, chunk):
            z = video[i : i + chunk].to(vae.dtype)
            kwargs = {"num_frames": z.shape[0]} if temporal else {}
            out.append(vae.decode(z, **kwargs).sample.float())
    return torch.cat(out).reshape(batch, frames, *out[0].shape[1:])
