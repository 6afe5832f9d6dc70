"""Per-view 2D alignment: undo the small image-plane drift of generated views before fitting.

A view generator's frames disagree a little: the object shifts and scales by a percent or two and turns by about a
degree from view to view. Each view (image and mask) is matched to a consensus of the others by a similarity about
the image centre (shift, scale, in-plane rotation), fitted on blurred, downscaled images; the trusted views (the
input view) stay fixed. The same warp is applied to the view's image and mask, so colour stays registered with its
silhouette. Two consensuses:

- `align_silhouettes` (before the visual hull, svd3d/recon/pipeline.py): each view's mask against the silhouette
  of the hull carved from all the other views' masks, a few rounds. A hull is an intersection, so one drifted
  mask cuts every other view's geometry; aligned first, the masks agree and the hull (and the field inside it)
  keeps the object's size.
- `align_to_renders` (inside the field, svd3d.recon.field with FieldSettings(align=True)): each view's image and
  mask against the coarse field's render of it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from svd3d.cameras import Intrinsics
from svd3d.recon.hull import carve_visual_hull
from svd3d.recon.views import ViewSet, downscale_views
from svd3d.render import render_silhouettes

BLUR_PX = 1.0  # Gaussian blur (pixels of the compared images) that gives the match a smooth basin
MAX_SHIFT = 0.08  # fits that move a view further than this fraction of its side are not trusted (kept as is)
MAX_LOG_SCALE = 0.1
MAX_ROTATE_DEG = 8.0
SILHOUETTE_SIZE = 144  # masks are matched at about this longer side: a 576 px view's 1.5 % drift is 2 px here
SILHOUETTE_RESOLUTION = 96  # the leave-one-out hulls' grid: 1/96 of the box is about a pixel at SILHOUETTE_SIZE
SILHOUETTE_ROUNDS = 2  # the second round carves from masks the first has aligned: a tighter, truer consensus
# in-plane rotation is left alone: silhouettes pin it poorly (on the bunny's mildly drifted views, benchmarks/
# recon_generated.py's renders, fitted angles were off by 1.0 deg rms against a true drift of 0.6 deg rms, and
# shift-and-scale-only fits matched the clean masks better: IoU 0.968 against 0.964)
SILHOUETTE_ROTATE = False
# `svd3d recon` aligns the views' silhouettes before carving the hull (svd3d/recon/pipeline.py) when True. Off:
# on benchmarks/recon_generated.py it helped mildly drifted views (Duck field Chamfer 0.0164 -> 0.0128, BoxTextured
# 0.0685 -> 0.0578) but moved clean views too (BoxTextured clean 0.0321 -> 0.0547, Duck 0.0060 -> 0.0074): a
# leave-one-out hull's silhouette is fatter than the mask in a view-dependent way, and the two-sided fit follows it
RECON_ALIGN_SILHOUETTES = False


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


def fit_similarity(
    image: np.ndarray, target: np.ndarray, start=None, cval: float = 0.0, *, rotate: bool = True
) -> np.ndarray:
    """(4,) similarity (see `similarity_matrix`, in this image's pixels) that best warps the (H, W) or (H, W, C)
    float `image` onto `target` (both already blurred), by Powell's method on the sum of squared differences,
    from `start` (default the identity). rotate=False keeps the start's angle (shift and scale only)."""
    from scipy.optimize import minimize

    weights = np.array([1.0, 1.0, 100.0, 100.0])  # pixels vs log-scale / radians: comparable step sizes
    x0 = np.zeros(4) if start is None else np.asarray(start, np.float64) * weights
    n = 4 if rotate else 3

    def full(x):
        return np.concatenate([x, x0[n:]]) / weights

    def cost(x):
        return float(((_warp(image, full(x), 1.0, cval) - target) ** 2).sum())

    res = minimize(cost, x0[:n], method="Powell", options={"xtol": 1e-2, "ftol": 1e-6, "maxfev": 400})
    return full(res.x)


def plausible(params: np.ndarray, shape: tuple[int, int]) -> bool:
    """Whether a similarity (in pixels of an image of `shape`) is small enough to be a generator's drift."""
    return bool(
        (np.abs(params[:2]) <= MAX_SHIFT * np.array(shape)).all()
        and abs(params[2]) <= MAX_LOG_SCALE
        and abs(np.degrees(params[3])) <= MAX_ROTATE_DEG
    )


def compose(first: np.ndarray, then: np.ndarray) -> np.ndarray:
    """(N, 4) similarities (full-size pixels): warping by `first` and the result by `then` is warping once by
    the returned ones. With M = rotation / scale (see `similarity_matrix`), the output samples the input at
    M1 M2 (x - c - t2 - M2^-1 t1) + c: angles and log scales add, t = t2 + M2^-1 t1."""
    first, then = np.asarray(first, np.float64), np.asarray(then, np.float64)
    r1, c1 = first[:, 0], first[:, 1]
    s2, cos, sin = np.exp(then[:, 2]), np.cos(then[:, 3]), np.sin(then[:, 3])
    out = first + then
    out[:, 0] = then[:, 0] + s2 * (cos * r1 - sin * c1)  # M2^-1 = s2 [[cos, -sin], [sin, cos]]
    out[:, 1] = then[:, 1] + s2 * (sin * r1 + cos * c1)
    return out


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


def align_silhouettes(
    masks: np.ndarray,
    c2w: np.ndarray,
    intrinsics: Intrinsics,
    trusted: np.ndarray,
    *,
    size: int = SILHOUETTE_SIZE,
    resolution: int = SILHOUETTE_RESOLUTION,
    rounds: int = SILHOUETTE_ROUNDS,
) -> np.ndarray:
    """(N, 4) similarities (see `similarity_matrix`, in full-size pixels; angle 0, see SILHOUETTE_ROTATE) that
    move each (N, H, W) mask onto the silhouette, in its own camera, of the visual hull carved from the other
    views' masks as the previous round aligned them. The first round's fits lose their median: a hull carved
    from drifted masks is shrunk in every view alike, a shared bias, not drift; later rounds carve from masks
    that agree, and the trusted views (in every leave-one-out hull) hold the frame. Trusted views, views with no
    hull to match and implausible fits keep the previous round's similarity (at first the identity)."""
    from scipy.ndimage import gaussian_filter

    masks = np.asarray(masks, np.float32)
    trusted = np.asarray(trusted, bool)
    _, small, intr = downscale_views(masks, intrinsics, size, whole_factor=True)
    factor = intrinsics.width / intr.width  # whole_factor: the same on both axes
    n = len(small)
    free = np.flatnonzero(~trusted)
    params = np.zeros((n, 4))
    for round_ in range(max(rounds, 0)):
        current = np.stack([_warp(m, p, 1.0, 0.0) if p.any() else m for m, p in zip(small, params, strict=True)])
        fitted = params.copy()
        for i in free:
            others = np.flatnonzero(np.arange(n) != i)
            hull = carve_visual_hull(current[others], c2w[others], intr, resolution)
            if not hull.occupancy.any():
                continue
            target = render_silhouettes(hull.to_mesh(), c2w[i : i + 1], intr)[0].astype(np.float64)
            view = gaussian_filter(small[i].astype(np.float64), BLUR_PX)
            p = fit_similarity(view, gaussian_filter(target, BLUR_PX), params[i], rotate=SILHOUETTE_ROTATE)
            if plausible(p, small.shape[1:]):
                fitted[i] = p
        if round_ == 0 and len(free) > 1:
            fitted[free] -= np.median(fitted[free], axis=0)
        params = fitted
    params[:, :2] *= factor
    return params
