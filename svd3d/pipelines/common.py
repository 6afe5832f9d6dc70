"""Small pieces both pipelines use: device placement with optional offload, and the UNet call."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from svd3d.core.conditioning import Conditioning


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
