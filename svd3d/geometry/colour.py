"""sRGB <-> linear light, written once: the exact transfer functions, a uint8 decode table and a fast encoder.

Everything that blends colours (rendering, texture baking, colour transfer between meshes, glTF vertex colours)
decodes sRGB to linear light, works there, and encodes back with these.
"""

from __future__ import annotations

import numpy as np


def srgb_to_linear(c) -> np.ndarray:
    """sRGB values in [0, 1] -> linear light, float64 (the IEC 61966-2-1 curve)."""
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c) -> np.ndarray:
    """Linear light (clipped to [0, 1]) -> sRGB values in [0, 1], float64."""
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


SRGB_DECODE = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)  # uint8 sRGB -> float32 linear, by index
_ENCODE = np.round(linear_to_srgb(np.linspace(0.0, 1.0, 1 << 16)) * 255).astype(np.uint8)  # linear -> uint8


def encode_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear [0, 1] floats -> uint8 sRGB (a 65536-entry table: exact to within rounding)."""
    return _ENCODE[np.round(np.clip(linear, 0.0, 1.0) * 65535).astype(np.int32)]


def unit_rgb(color) -> np.ndarray | None:
    """A trimesh colour (uint8 0..255 or float 0..1, RGB or RGBA) as (3,) float in [0, 1], or None."""
    if color is None:
        return None
    raw = np.asarray(color)
    c = raw.astype(np.float64).reshape(-1)[:3]
    if c.size < 3:
        return None
    return c / 255.0 if raw.dtype == np.uint8 or c.max() > 1.0 else c
