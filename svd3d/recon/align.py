"""Per-view 2D alignment: undo the small image-plane drift of generated views before fitting.

A view generator's frames disagree a little: the object shifts and scales by a percent or two and turns by about a
degree from view to view. Each view (image and mask) is matched to a consensus render of it (svd3d.recon.field
renders its coarse fit of all the views) by a similarity about the image centre (shift, scale, in-plane
rotation), fitted on blurred, downscaled images; the trusted views (the input view) stay fixed and anchor the
frame. The same warp is applied to the view's image and mask, so colour stays registered with its silhouette.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from svd3d.recon.views import ViewSet

BLUR_PX = 1.0  # Gaussian blur (pixels of the compared images) that gives the match a smooth basin
MAX_SHIFT = 0.08  # fits that move a view further than this fraction of its side are not trusted (kept as is)
MAX_LOG_SCALE = 0.1
MAX_ROTATE_DEG = 8.0


def similarity_matrix(params: np.ndarray, shape: tuple[int, int], scale: float = 1.0):
    """(shift_row, shift_col, log_scale, angle_rad) in pixels of an image `scale` times smaller -> (matrix (2, 2),
    offset (2,)) for scipy's affine_transform on an image of `shape`: the output samples the input at
    matrix @ x + offset, i.e. the input is turned by angle, scaled and shifted about the image centre."""
    t = np.asarray(params[:2], np.float64) * scale
    s, a = np.exp(params[2]), params[3]
    inverse = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) / s
    centre = (np.array(shape, np.float64) - 1) / 2.0
    return inverse, centre - inverse @ (centre + t)


def _warp(image: np.ndarray, params: np.ndarray, scale: float, cval: float) -> np.ndarray:
    from scipy.ndimage import affine_transform

    matrix, offset = similarity_matrix(params, image.shape[:2], scale)
    if image.ndim == 2:
        return affine_transform(image, matrix, offset, order=1, mode="constant", cval=cval)
    return np.stack(
        [
            affine_transform(image[..., c], matrix, offset, order=1, mode="constant", cval=cval)
            for c in range(image.shape[-1])
        ],
        -1,
    )


def fit_similarity(image: np.ndarray, target: np.ndarray, start=None, cval: float = 0.0) -> np.ndarray:
    """(4,) similarity (see `similarity_matrix`, in this image's pixels) that best warps the (H, W) or (H, W, C)
    float `image` onto `target` (both already blurred), by Powell's method on the sum of squared differences,
    from `start` (default the identity)."""
    from scipy.optimize import minimize

    weights = np.array([1.0, 1.0, 100.0, 100.0])  # pixels vs log-scale / radians: comparable step sizes
    x0 = np.zeros(4) if start is None else np.asarray(start, np.float64) * weights

    def cost(x):
        return float(((_warp(image, x / weights, 1.0, cval) - target) ** 2).sum())

    res = minimize(cost, x0, method="Powell", options={"xtol": 1e-2, "ftol": 1e-6, "maxfev": 400})
    return res.x / weights


def plausible(params: np.ndarray, shape: tuple[int, int]) -> bool:
    """Whether a similarity (in pixels of an image of `shape`) is small enough to be a generator's drift."""
    return bool(
        (np.abs(params[:2]) <= MAX_SHIFT * np.array(shape)).all()
        and abs(params[2]) <= MAX_LOG_SCALE
        and abs(np.degrees(params[3])) <= MAX_ROTATE_DEG
    )


def warp_views(views: ViewSet, params: np.ndarray) -> ViewSet:
    """The views with each image (white outside) and mask warped by its similarity ((N, 4), full-size pixels)."""
    images, masks = views.images.copy(), views.masks.copy()
    for i in np.flatnonzero(np.abs(params).sum(1) > 0):
        masks[i] = np.clip(_warp(views.masks[i], params[i], 1.0, 0.0), 0.0, 1.0)
        images[i] = np.clip(_warp(views.images[i], params[i], 1.0, 1.0), 0.0, 1.0)
    return replace(views, images=images.astype(np.float32), masks=masks.astype(np.float32))


def align_to_renders(
    images: np.ndarray, masks: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, trusted: np.ndarray
) -> np.ndarray:
    """(N, 4) similarities (in these images' pixels) that warp each view's (N, h, w, 3) image on white and
    (N, h, w) mask onto a consensus render of it (rgb on white, alpha), less their median (what all views share is
    the render's bias, not drift); trusted views and implausible fits get the identity."""
    from scipy.ndimage import gaussian_filter

    params = np.zeros((len(images), 4))
    blur = (BLUR_PX, BLUR_PX, 0)
    for i in np.flatnonzero(~np.asarray(trusted, bool)):
        # darkness (1 - rgb) and coverage: both 0 on the background, which the warp brings in from outside
        view = gaussian_filter(np.concatenate([1 - images[i], masks[i][..., None]], -1).astype(np.float64), blur)
        target = gaussian_filter(np.concatenate([1 - rgb[i], alpha[i][..., None]], -1).astype(np.float64), blur)
        p = fit_similarity(view, target)
        if plausible(p, images.shape[1:3]):
            params[i] = p
    # a coarse render is a little fatter (or offset) in every view alike; drift is not: keep only what differs
    free = np.flatnonzero(~np.asarray(trusted, bool) & (np.abs(params).sum(1) > 0))
    if len(free) > 1:
        params[free] -= np.median(params[free], axis=0)
    return params
