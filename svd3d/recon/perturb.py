"""A seeded simulation of a view generator's errors, for measuring reconstruction on views that disagree a little.

Generated orbit views (SV3D's 21 frames) do not agree perfectly: from view to view the object shifts and scales by
a percent or two in the image, turns by about a degree, its colour and brightness drift by a few percent, and the
frames are slightly soft (the bundled tiny model works at 64 px). `perturb_views` applies such errors to
ground-truth RGBA renders, the same geometric map to colour and alpha so each mask moves with its image. The input
view (index 0) is left alone: it is the photo the generator was given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from svd3d.errors import SVD3DError


@dataclass(frozen=True)
class Perturbation:
    """Per-view error magnitudes; each view draws every error uniformly from [-magnitude, magnitude]."""

    shift: float = 0.0  # image-plane translation, as a fraction of the image side, per axis
    scale: float = 0.0  # relative scale change about the image centre
    rotate_deg: float = 0.0  # in-plane rotation about the image centre, degrees
    color: float = 0.0  # relative gain per RGB channel
    brightness: float = 0.0  # offset added to every channel of the object's colour (in [0, 1] units)
    blur_px: float = 0.0  # Gaussian blur sigma in pixels (fixed, not drawn)
    round_trip: int = 0  # downscale the longer side to this many pixels and back (0: no)


LEVELS = {
    "clean": Perturbation(),
    "mild": Perturbation(shift=0.015, scale=0.015, rotate_deg=1.0, color=0.03, brightness=0.03, blur_px=0.7),
    "strong": Perturbation(
        shift=0.03, scale=0.03, rotate_deg=2.0, color=0.06, brightness=0.05, blur_px=1.0, round_trip=64
    ),
}


def perturb_image(rgba: np.ndarray, p: Perturbation, rng: np.random.Generator) -> np.ndarray:
    """One (H, W, 4) float RGBA image in [0, 1], RGB composited on white -> the same, perturbed by draws from rng."""
    from scipy.ndimage import affine_transform, gaussian_filter

    h, w = rgba.shape[:2]
    alpha = rgba[..., 3:4].astype(np.float64)
    premult = rgba[..., :3].astype(np.float64) - (1.0 - alpha)  # alpha x object colour; background 0
    # colour: a gain per channel and one brightness offset, on the object only
    gain = 1.0 + rng.uniform(-p.color, p.color, 3)
    offset = rng.uniform(-p.brightness, p.brightness)
    premult = premult * gain + alpha * offset
    layers = np.concatenate([premult, alpha], -1)  # (H, W, 4)
    # geometry: a similarity about the image centre; output pixel x samples input A @ (x - c) + c - t
    s = 1.0 + rng.uniform(-p.scale, p.scale)
    angle = np.deg2rad(rng.uniform(-p.rotate_deg, p.rotate_deg))
    shift = rng.uniform(-p.shift, p.shift, 2) * np.array([h, w])  # (rows, columns)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    inverse = rot.T / s
    centre = (np.array([h, w]) - 1) / 2.0
    offset_rc = centre - inverse @ (centre + shift)
    for c in range(4):
        layers[..., c] = affine_transform(layers[..., c], inverse, offset_rc, order=1, mode="constant", cval=0.0)
    if p.blur_px > 0:
        layers = gaussian_filter(layers, sigma=(p.blur_px, p.blur_px, 0))
    if p.round_trip:
        layers = _round_trip(layers, p.round_trip)
    alpha = np.clip(layers[..., 3:4], 0.0, 1.0)
    rgb = np.clip(np.clip(layers[..., :3], 0.0, alpha) + (1.0 - alpha), 0.0, 1.0)
    return np.concatenate([rgb, alpha], -1)


def _round_trip(layers: np.ndarray, size: int) -> np.ndarray:
    """(H, W, C) float -> box-downscaled so the longer side is `size`, then bicubic back to (H, W, C)."""
    from PIL import Image

    h, w = layers.shape[:2]
    small = (max(1, round(w * size / max(h, w))), max(1, round(h * size / max(h, w))))
    out = np.empty_like(layers)
    for c in range(layers.shape[-1]):
        image = Image.fromarray(layers[..., c].astype(np.float32), mode="F")
        out[..., c] = np.asarray(image.resize(small, Image.BOX).resize((w, h), Image.BICUBIC), np.float64)
    return out


def perturb_views(rgba: np.ndarray, level: str | Perturbation, seed: int = 0) -> np.ndarray:
    """(N, H, W, 4) uint8 RGBA views (RGB on white, alpha = coverage) -> the same with every view but index 0
    perturbed by `level` (a name in LEVELS or a Perturbation), each view with its own seeded draws."""
    p = LEVELS.get(level) if isinstance(level, str) else level
    if p is None:
        raise SVD3DError(f"unknown perturbation level {level!r}; use one of {', '.join(LEVELS)}")
    rgba = np.asarray(rgba)
    if rgba.ndim != 4 or rgba.shape[-1] != 4 or rgba.dtype != np.uint8:
        raise SVD3DError(f"views must be (N, H, W, 4) uint8 RGBA, got {rgba.shape} {rgba.dtype}")
    if p == Perturbation():
        return rgba.copy()
    out = rgba.copy()
    for i in range(1, len(rgba)):
        rng = np.random.default_rng([seed, i])
        image = perturb_image(rgba[i].astype(np.float64) / 255.0, p, rng)
        out[i] = np.round(image * 255.0).astype(np.uint8)
    return out
