"""svd3d: one photo to a game-ready 3D asset, or to a short video, with one Stable Video Diffusion core.

The heavy modules (torch, diffusers) load on first use, so ``import svd3d`` and ``svd3d --help`` stay fast.
"""

from __future__ import annotations

from svd3d.version import __version__

__all__ = ["generate_video", "load_model", "SVD3DError", "__version__"]


def __getattr__(name: str):
    if name == "generate_video":
        from svd3d.pipelines.video import generate_video

        return generate_video
    if name == "load_model":
        from svd3d.models import load_model

        return load_model
    if name == "PerFrameUNet":  # lets diffusers resolve ["svd3d", "PerFrameUNet"] in a model_index.json
        from svd3d.models.unet import PerFrameUNet

        return PerFrameUNet
    if name == "SVD3DError":
        from svd3d.errors import SVD3DError

        return SVD3DError
    raise AttributeError(f"module 'svd3d' has no attribute {name!r}")
