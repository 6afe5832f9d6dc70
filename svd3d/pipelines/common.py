"""Small pieces both pipelines use: device placement with optional offload, and the UNet call."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from svd3d.core.conditioning import Conditioning
from svd3d.errors import SVD3DError


def check_positive(name: str, value, flag: str) -> None:
    if value is not None and value <= 0:
        raise SVD3DError(f"{name} must be a positive number, got {value}; set {flag} to 1 or more")


def check_guidance(min_guidance, max_guidance) -> None:
    for name, value in (("min guidance", min_guidance), ("max guidance", max_guidance)):
        if value is not None and not 0.0 <= value <= 50.0:
            raise SVD3DError(f"{name} must be in [0, 50], got {value}")


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Float frames in [0, 1] -> uint8, rounded."""
    return (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def decoded_to_frames(video: torch.Tensor) -> np.ndarray:
    """Decoder output (T, 3, H, W) in about [-1, 1] -> (T, H, W, 3) float32 in [0, 1]."""
    return ((video.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)


@contextlib.contextmanager
def placed(module: torch.nn.Module, device: torch.device, offload: bool) -> Iterator[torch.nn.Module]:
    """Run `module` on `device`; with offload, move it there for the block only and back to the CPU after, so
    only one network occupies accelerator memory at a time."""
    if offload and device.type != "cpu":
        module.to(device)
        try:
            yield module
        finally:
            module.to("cpu")
            if device.type == "cuda":
                torch.cuda.empty_cache()
    else:
        yield module


def unet_network(unet: torch.nn.Module):
    """Adapt the UNet to the denoiser's Network signature, running it in its own dtype, returning float32."""

    def net(x_in: torch.Tensor, c_noise: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        dtype = unet.dtype
        out = unet(
            x_in.to(dtype),
            c_noise.to(x_in.device),
            encoder_hidden_states=cond.clip_embeds.to(dtype),
            added_time_ids=cond.vector.to(x_in.device),
            return_dict=False,
        )[0]
        return out.float()

    return net


def ready_model(model, kind: str, dtype: torch.dtype, device: torch.device, offload: bool, config=None):
    """Load `model` (a name / path / hub id, the bundled default when None, or an SVDModel as is), check it can run
    `kind` ('video' or 'orbit'), and place it: on `device`, or left on the CPU when offloading."""
    from svd3d.models import SVDModel, load_model, resolve_kind
    from svd3d.models.attention import use_single_key_cross_attention
    from svd3d.models.registry import default_model

    if not isinstance(model, SVDModel):
        model = load_model(model or default_model(kind), dtype=dtype, config=config)
    resolve_kind(model, kind)
    use_single_key_cross_attention(model.unet)  # the same outputs, less work (svd3d.models.attention)
    if dtype == torch.float16:
        model.vae.to(torch.float32)  # fp16 VAEs overflow into black frames; the VAE is small
    if not offload:
        model.to(device)
    return model
