"""Camera motion measured from a clip's pixels: dense optical flow (OpenCV's Farnebäck) between consecutive frames,
summarised by the affine motion field that fits it best.

For frames t -> t+1 the flow (u, v) in pixels is fitted, by least squares over every pixel, with

    u = tx + a (x - cx) + b (y - cy),     v = ty + c (x - cx) + d (y - cy)

(x right, y down, (cx, cy) the image centre). tx, ty is the motion of the picture's centre (for a pan or a
tracking shot, of the whole background); a + d is the divergence, the relative growth of the picture per frame
(> 0 zooming in, < 0 zooming out, 2 ln s for a zoom by s). A pan left moves the picture right (tx > 0).

`opencv-python-headless` is an optional dependency (`pip install 'svd3d[flow]'`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from svd3d.errors import SVD3DError

# Farnebäck's settings for small frames (64-256 px): a 3-level pyramid, 9 px windows
FARNEBACK = {"pyr_scale": 0.5, "levels": 3, "winsize": 9, "iterations": 3, "poly_n": 5, "poly_sigma": 1.1, "flags": 0}


@dataclass(frozen=True)
class GlobalMotion:
    """The affine motion of a clip, means over its consecutive frame pairs."""

    flow_x: float  # px / frame, the picture's centre moving right (> 0) or left
    flow_y: float  # px / frame, down (> 0) or up
    divergence: float  # relative growth per frame (> 0: zoom in)
    residual: float  # px, RMS of the flow the affine field does not explain (the scene's own motion)

    @property
    def speed(self) -> float:
        return float(np.hypot(self.flow_x, self.flow_y))


def _cv2():
    try:
        import cv2
    except ImportError:
        raise SVD3DError("measuring motion needs OpenCV: pip install 'svd3d[flow]' (opencv-python-headless)") from None
    return cv2


def dense_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Farnebäck flow from frame `a` to frame `b`, (H, W, 3) uint8 or float in [0, 1] -> (H, W, 2) float32 px
    (u right, v down): a's pixel (x, y) is at (x + u, y + v) in b."""
    cv2 = _cv2()
    grey = [cv2.cvtColor(_uint8(f), cv2.COLOR_RGB2GRAY) for f in (a, b)]
    return cv2.calcOpticalFlowFarneback(grey[0], grey[1], None, **FARNEBACK)


def _uint8(frame: np.ndarray) -> np.ndarray:
    if frame.dtype == np.uint8:
        return np.ascontiguousarray(frame)
    return (np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def affine_fit(flow: np.ndarray, border: int = 2) -> tuple[np.ndarray, float]:
    """Least-squares affine field of a flow (H, W, 2), `border` px at each edge left out (the flow there sees
    content that enters or leaves): ((tx, ty, a, b, c, d) as in the module docstring, RMS residual px)."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[border : h - border, border : w - border].astype(np.float64)
    x, y = xs - (w - 1) / 2, ys - (h - 1) / 2
    design = np.stack([np.ones_like(x), x, y], axis=-1).reshape(-1, 3)  # (N, 3)
    uv = flow[border : h - border, border : w - border].reshape(-1, 2).astype(np.float64)  # (N, 2)
    coef, *_ = np.linalg.lstsq(design, uv, rcond=None)  # (3, 2): rows 1, x, y; columns u, v
    residual = float(np.sqrt(np.mean((design @ coef - uv) ** 2)))
    return np.array([coef[0, 0], coef[0, 1], coef[1, 0], coef[2, 0], coef[1, 1], coef[2, 1]]), residual


def global_motion(frames: np.ndarray) -> GlobalMotion:
    """The affine motion of a clip (T, H, W, 3) (T >= 2), averaged over its T - 1 consecutive pairs."""
    if len(frames) < 2:
        raise SVD3DError(f"motion needs at least 2 frames, got {len(frames)}")
    fits = [affine_fit(dense_flow(frames[t], frames[t + 1])) for t in range(len(frames) - 1)]
    p = np.mean([f[0] for f in fits], axis=0)
    return GlobalMotion(float(p[0]), float(p[1]), float(p[2] + p[5]), float(np.mean([f[1] for f in fits])))
