"""The loaded model: the three networks a pipeline needs plus what svd3d knows about them."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from svd3d.models.info import ModelInfo


@dataclass
class SVDModel:
    """unet: PerFrameUNet; vae: AutoencoderKLTemporalDecoder (SVD) or AutoencoderKL (SV3D), whose encoder makes the
    conditioning latent and whose decoder decodes samples; image_encoder: CLIPVisionModelWithProjection."""

    unet: torch.nn.Module
    vae: torch.nn.Module
    image_encoder: torch.nn.Module
    info: ModelInfo
    source: str  # what the user named: a path, a hub id or a bundled name
    fingerprint: str  # cheap content hash of the weights (see models.files.fingerprint)

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"unet": self.unet, "vae": self.vae, "image_encoder": self.image_encoder}

    def to(self, device: torch.device | str) -> SVDModel:
        for module in self.modules().values():
            module.to(device)
        return self

    def eval(self) -> SVDModel:
        for module in self.modules().values():
            module.eval().requires_grad_(False)
        return self
