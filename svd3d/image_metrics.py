"""Image and mask metrics, small and pure, that reconstruction and evaluation both score views with.

Protocol: images in [0, 1] (composited on white by the caller), PSNR over the whole image, SSIM with skimage's
defaults on RGB, mask IoU of two boolean masks (1 when both are empty).
"""

from __future__ import annotations

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two images in [0, 1] (any shape)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two (H, W, 3) images in [0, 1] (skimage, Gaussian-free 7x7 windows, per channel)."""
    from skimage.metrics import structural_similarity

    return float(
        structural_similarity(np.asarray(a, np.float64), np.asarray(b, np.float64), channel_axis=-1, data_range=1.0)
    )


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks; 1.0 when both are empty."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
