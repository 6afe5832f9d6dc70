"""What svd3d needs to know about a model beyond its weights: its kind, vector layout and sampling defaults.

Stored as ``svd3d.json`` in the diffusers-format folders svd3d writes; derived for stock diffusers SVD folders.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal

INFO_FILE = "svd3d.json"

ModelKind = Literal["video", "orbit"]


@dataclass(frozen=True)
class ModelInfo:
    """Identity and sampling defaults of one model (RELEASED below for Stability's four)."""

    name: str  # e.g. "svd_xt", "sv3d_p", "tiny-video", or a user's label
    kind: ModelKind  # video: fps / motion conditioning; orbit: camera conditioning
    vector_fields: tuple[tuple[str, int], ...]  # per-frame vector layout: (input key, sinusoid width)
    num_frames: int  # default frames per clip / orbit
    num_steps: int  # default sampling steps
    guidance: Literal["linear", "triangle", "constant"]  # per-frame guidance schedule
    min_guidance: float
    max_guidance: float
    cond_aug: float  # noise augmentation of the conditioning image
    width: int  # default output size, pixels
    height: int
    fps: int = 7  # video only: default frame rate (the model sees fps - 1)
    motion_bucket_id: int = 127  # video only
    sigma_min: float = 0.002
    sigma_max: float = 700.0
    decoder: Literal["temporal", "image"] = "temporal"
    # orbit models: how their frames relate to svd3d's camera convention (svd3d/cameras.py)
    frame_order: Literal["input_last", "input_first"] = "input_last"  # where the input view sits among the frames
    azimuth_sign: int = 1  # +1: the model's azimuth grows as the camera turns to its own right, as svd3d's does
    fov_deg: float = 33.8  # field of view of the training cameras
    extra: dict = field(default_factory=dict)  # anything else worth keeping with the model, verbatim

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @staticmethod
    def from_dict(data: dict) -> ModelInfo:
        known = {f.name for f in fields(ModelInfo)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown keys in {INFO_FILE}: {', '.join(unknown)}")
        data = dict(data)
        data["vector_fields"] = tuple((str(n), int(w)) for n, w in data["vector_fields"])
        return ModelInfo(**data)

    @staticmethod
    def read(folder: Path) -> ModelInfo | None:
        path = Path(folder) / INFO_FILE
        if not path.is_file():
            return None
        return ModelInfo.from_dict(json.loads(path.read_text()))


# The per-frame vector layouts of the released models: (input key, sinusoid width) per field.
# SVD / SVD-XT: fps_id (fps - 1), motion bucket, noise augmentation; 256-wide sinusoids each.
SVD_VECTOR_FIELDS: tuple[tuple[str, int], ...] = (("fps_id", 256), ("motion_bucket_id", 256), ("cond_aug", 256))
SV3D_U_VECTOR_FIELDS: tuple[tuple[str, int], ...] = (("cond_aug", 256),)
SV3D_P_VECTOR_FIELDS: tuple[tuple[str, int], ...] = (("cond_aug", 256), ("polars_rad", 512), ("azimuths_rad", 512))

# The four released models, with the frames, steps, guidance and sizes their model cards give.
RELEASED: dict[str, ModelInfo] = {
    "svd": ModelInfo("svd", "video", SVD_VECTOR_FIELDS, 14, 25, "linear", 1.0, 2.5, 0.02, 1024, 576),
    "svd_xt": ModelInfo("svd_xt", "video", SVD_VECTOR_FIELDS, 25, 30, "linear", 1.5, 3.0, 0.02, 1024, 576),
    "sv3d_u": ModelInfo(
        "sv3d_u", "orbit", SV3D_U_VECTOR_FIELDS, 21, 50, "triangle", 1.0, 2.5, 1e-5, 576, 576, decoder="image"
    ),
    "sv3d_p": ModelInfo(
        "sv3d_p", "orbit", SV3D_P_VECTOR_FIELDS, 21, 50, "triangle", 1.0, 2.5, 1e-5, 576, 576, decoder="image"
    ),
}
