"""CLIP image preprocessing exactly as SVD's conditioner: antialiased bicubic resize to 224, CLIP normalisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def resize_antialiased(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Gaussian pre-blur then bicubic resize with align_corners=True: (B, C, H, W) -> (B, C, *size).

    sigma = max((factor - 1) / 2, 0.001) per axis, kernel = odd(max(4 sigma, 3)), reflect padding: the
    skimage-style rule that kornia (used by sgm) and diffusers share. An upscaled axis gets a [0, 1, 0] kernel.
    """
    h, w = image.shape[-2:]
    sig_y, sig_x = max((h / size[0] - 1) / 2, 0.001), max((w / size[1] - 1) / 2, 0.001)
    ky, kx = int(max(4 * sig_y, 3)), int(max(4 * sig_x, 3))
    ky, kx = ky + (ky % 2 == 0), kx + (kx % 2 == 0)
    b, c = image.shape[:2]
    x = image.reshape(b * c, 1, h, w)
    kern_x = _gaussian_kernel(kx, sig_x).to(x).view(1, 1, 1, kx)
    kern_y = _gaussian_kernel(ky, sig_y).to(x).view(1, 1, ky, 1)
    x = F.conv2d(F.pad(x, (kx // 2, kx // 2, 0, 0), mode="reflect"), kern_x)
    x = F.conv2d(F.pad(x, (0, 0, ky // 2, ky // 2), mode="reflect"), kern_y)
    x = F.interpolate(x.reshape(b, c, h, w), size=size, mode="bicubic", align_corners=True)
    return x


def clip_pixels(image: torch.Tensor, size: int = 224) -> torch.Tensor:
    """Image (B, 3, H, W) in [-1, 1] -> CLIP pixel values (B, 3, size, size), normalised."""
    x = resize_antialiased(image.float(), (size, size))
    x = (x + 1.0) / 2.0
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def encode_clip(image_encoder, image: torch.Tensor) -> torch.Tensor:
    """Projected CLIP image embedding of image (B, 3, H, W) in [-1, 1] -> (B, 1, D)."""
    size = image_encoder.config.image_size
    pixels = clip_pixels(image, size).to(device=image_encoder.device, dtype=image_encoder.dtype)
    return image_encoder(pixel_values=pixels).image_embeds[:, None]
