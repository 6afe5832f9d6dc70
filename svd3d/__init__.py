"""svd3d: one photo to a game-ready 3D asset, or to a short video, with one Stable Video Diffusion core.

    import svd3d
    asset = svd3d.generate_asset("chair.png", output="out/chair")   # views around the chair + mesh.glb
    clip = svd3d.generate_video("photo.png", output="photo.mp4")

The public functions live in svd3d.api (its __all__ lists them) and load on first use, so that `import svd3d`
and `svd3d --help` stay fast: torch and diffusers are imported only when a job runs.
"""

from __future__ import annotations

from svd3d.errors import SVD3DError
from svd3d.version import __version__

_API = frozenset({
    "generate_video", "generate_orbit", "generate_asset", "generate_image", "reconstruct", "reconstruct_into",
    "render_orbit", "export_mesh", "load_model", "prepare_model", "train", "build_dataset", "curate_videos",
    "convert_checkpoint", "evaluate_mesh", "evaluate_orbit", "evaluate_families", "evaluate_video", "evaluate_asset",
    "evaluate_camera", "run_batch", "model_entries", "lora_entries", "check_mesh_options", "AssetResult",
    "OrbitRender", "DatasetResult", "CurateResult", "OrbitResult", "VideoResult", "ReconResult", "TrainResult",
    "MeshScores", "OrbitEval", "FamilyEval", "VideoEval", "AssetEval", "CameraEval", "SVDModel", "MadeImage",
})  # fmt: skip

__all__ = ["SVD3DError", "__version__", *sorted(_API)]


def __getattr__(name: str):
    if name in _API:
        from svd3d import api

        return getattr(api, name)
    if name == "PerFrameUNet":  # lets diffusers resolve ["svd3d", "PerFrameUNet"] in a model_index.json
        from svd3d.models.unet import PerFrameUNet

        return PerFrameUNet
    raise AttributeError(f"module 'svd3d' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
