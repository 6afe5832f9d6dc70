"""The per-frame conditioning vector: the raw scalar values the UNet embeds (each with its own sinusoid width,
svd3d.models.unet), one row per frame, its columns named by the UNet's vector fields. Written once here for
generation (svd3d.pipelines) and training (svd3d.training.loop).

    video models (SVD / SVD-XT)   fps_id = fps - 1, motion_bucket_id, cond_aug: the same for every frame of a clip
    orbit models (SV3D_u / _p)    cond_aug for every frame; SV3D_p adds per frame polars_rad = radians(90 -
                                  elevation) and azimuths_rad = radians((azimuth_sign x azimuth) mod 360), the
                                  azimuth relative to the input view, in the model's frame order

cond_aug is the noise level added to the conditioning image (the VAE's input), also fed to the UNet here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from svd3d.errors import SVD3DError


def _stack(names: Sequence[str], columns: dict[str, np.ndarray], kind: str) -> torch.Tensor:
    unknown = [n for n in names if n not in columns]
    if unknown:
        raise SVD3DError(f"this {kind} model's vector field(s) {unknown} are not known to svd3d")
    return torch.tensor(np.stack([columns[n] for n in names], -1), dtype=torch.float32)


def video_vector(names: Sequence[str], fps, motion_bucket, cond_aug, frames: int) -> torch.Tensor:
    """(N, frames, F) float32: the vector of N clips, each row repeated for every frame (an expanded view).

    fps, motion_bucket, cond_aug: one number each, or one per clip ((N,) arrays); fps is the clip's frame rate
    (the model sees fps - 1)."""
    fps, motion, aug = np.broadcast_arrays(
        *(np.atleast_1d(np.asarray(v, np.float64)) for v in (fps, motion_bucket, cond_aug))
    )
    rows = _stack(names, {"fps_id": fps - 1.0, "motion_bucket_id": motion, "cond_aug": aug}, "video")
    return rows[:, None].expand(-1, frames, -1)


def orbit_vector(
    names: Sequence[str], elevations, azimuths, model_perm, cond_aug: float, azimuth_sign: int
) -> torch.Tensor:
    """(T, F) float32: one orbit's vector in the model's frame order.

    elevations, azimuths: (T,) degrees in svd3d's order (0 = the input view at azimuth 0, then increasing
    azimuth); model_perm: the model's frame order (svd3d.cameras.model_order); azimuth_sign: the model's azimuth
    direction relative to svd3d's (ModelInfo.azimuth_sign). The angles are raw radians (the UNet applies the
    sinusoid)."""
    elev, az = np.asarray(elevations)[model_perm], np.asarray(azimuths)[model_perm]
    columns = {
        "cond_aug": np.full(len(elev), cond_aug),
        "polars_rad": np.radians(90.0 - elev),
        "azimuths_rad": np.radians((azimuth_sign * az) % 360.0),
    }
    return _stack(names, columns, "orbit")
