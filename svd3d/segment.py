"""Finding the object in a photo (alpha, plain background, or a locally cached rembg model) and framing it for orbit
models: crop, centre, resize, composite on white."""

from __future__ import annotations

import importlib.util
import logging
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from svd3d.errors import SVD3DError
from svd3d.image import has_transparency, mask_bbox

logger = logging.getLogger(__name__)

MaskMethod = Literal["alpha", "background", "rembg"]
MASK_METHODS: tuple[str, ...] = ("auto", "alpha", "background", "rembg")

WORK_SIDE = 1024  # the plain-background segmentation runs on a copy whose larger side is at most this
BORDER_SEGMENTS = 12  # per image side: the background colour is fitted to robust medians of these border pieces
THRESHOLD_FLOOR = 10.0  # minimum RGB distance (0-255 units) from the background that counts as object
MAX_EDGE_SPREAD = 8  # pixels: the widest blurred outline whose coverage is measured
EDGE_RAMP = 1.5  # width, in pixels, of the geometric alpha ramp across a mask boundary (anti-aliasing, no stairs)
MIN_OBJECT_PIXELS = 16  # at working resolution; anything smaller is noise, not an object

# rembg models whose ONNX file we look for in rembg's cache, best first: (file, rembg session that runs it
# from a local path without any download).
REMBG_MODELS = (
    ("isnet-general-use.onnx", "dis_custom"),
    ("u2net.onnx", "u2net_custom"),
    ("u2netp.onnx", "u2net_custom"),
)

NO_OBJECT_FIX = "give an RGBA image with transparency, or a photo of the object on a plain background"


@dataclass(frozen=True, eq=False)
class PreparedObject:
    """The conditioning image for an orbit model, and how it was made."""

    image: Image.Image  # RGB, size x size: the object centred, composited on white
    mask: np.ndarray  # (size, size) float32 in [0, 1], the object's soft mask on the same canvas
    method: MaskMethod  # how the object was found: "alpha" | "background" | "rembg"
    # (left, top, right, bottom) of the object in the source image, in pixels, right/bottom exclusive
    bbox: tuple[int, int, int, int]
    object_fraction: float  # the object's larger side as a fraction of the canvas side


@dataclass(frozen=True)
class BackgroundModel:
    """A smooth background colour fitted to the image borders, and the distance beyond which a pixel is object."""

    coeffs: np.ndarray  # (6, 3) float64: per-channel quadratic in normalised coordinates u, v in [-1, 1]
    threshold: float  # RGB distance (0-255 units) from the background above which a pixel is object
    noise: float  # median RGB distance of the border's background pixels from the fit

    def colour_at(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """(h, w) normalised coordinates -> (h, w, 3) float32 background colour."""
        return (_poly_terms(u, v) @ self.coeffs).astype(np.float32)


def rembg_model_path() -> tuple[Path, str] | None:
    """(ONNX file, rembg session name) when rembg is importable and one of its models is already in rembg's cache
    ($U2NET_HOME, else $XDG_DATA_HOME/.u2net, else ~/.u2net); None otherwise. Never downloads anything."""
    if importlib.util.find_spec("rembg") is None:
        return None
    home = os.environ.get("U2NET_HOME") or os.path.join(os.environ.get("XDG_DATA_HOME", "~"), ".u2net")
    home = Path(os.path.expanduser(home))
    for filename, session in REMBG_MODELS:
        path = home / filename
        if path.is_file() and path.stat().st_size > 0:
            return path, session
    return None


def choose_mask_method(img: Image.Image) -> MaskMethod:
    """The method `object_mask` uses by default: the alpha channel when it carries transparency, else rembg when
    its model is already cached locally, else the plain-background segmentation."""
    if has_transparency(img):
        return "alpha"
    if rembg_model_path() is not None:
        return "rembg"
    return "background"


def object_mask(img: Image.Image, method: str = "auto", *, name: str | None = None) -> np.ndarray:
    """Soft foreground mask of the object, (H, W) float32 in [0, 1], at the image's own size.

    method: "auto" (see `choose_mask_method`), "alpha", "background" or "rembg". `name` (e.g. the file path) is
    used in error messages. Raises SVD3DError when no object is found.
    """
    mask, _ = object_mask_and_method(img, method, name=name)
    return mask


def object_mask_and_method(
    img: Image.Image, method: str = "auto", *, name: str | None = None
) -> tuple[np.ndarray, MaskMethod]:
    """Like `object_mask`, and also says which method made the mask."""
    name = _describe(img, name)
    chosen = _resolve_method(img, method, name)
    if chosen == "alpha":
        mask = np.asarray(img.getchannel("A"), dtype=np.float32) / 255.0
        _check_found(mask > 0.5, name, "its alpha channel is fully transparent")
        return mask, chosen
    if chosen == "rembg":
        mask = _rembg_mask(img)
        if mask is not None:
            return mask, chosen
        chosen = "background"  # rembg failed to run: fall back to the method that needs no model
    alpha, _, _ = _background_mask(img, name)
    if alpha.shape != (img.height, img.width):
        alpha = np.asarray(Image.fromarray(alpha, "F").resize(img.size, Image.Resampling.BILINEAR))
    return np.clip(alpha, 0.0, 1.0).astype(np.float32), chosen


def _background_mask(img: Image.Image, name: str) -> tuple[np.ndarray, BackgroundModel, tuple[float, float]]:
    """Plain-background segmentation on the working copy -> (soft mask (h, w) float32 at working resolution,
    the background model, source pixels per working pixel along x and y)."""
    work, scale = _working_copy(img)
    rgb = np.asarray(work, dtype=np.float32)  # (h, w, 3)
    model = fit_background(rgb, name=name)
    u, v = _grid(work.width, work.height, (0.0, 0.0, img.width, img.height), img.width, img.height)
    bg = model.colour_at(u, v)
    alpha, _ = _soft_edges(segment_object(rgb, bg, model, name=name), rgb, bg, model)
    _check_found(alpha >= 0.5, name, "nothing in it stands out from the background")
    return alpha, model, scale


def prepare_object(
    img: Image.Image,
    size: int = 576,
    object_fraction: float = 0.85,
    *,
    method: str = "auto",
    name: str | None = None,
) -> PreparedObject:
    """Find the object, centre it on a square canvas where its larger side is `object_fraction` of the side,
    resize to size x size (LANCZOS) and composite it on white with its soft mask.

    The input is what `load_image` returns (RGB or RGBA, any size). `method` as in `object_mask`.
    """
    # 1. check inputs
    is_number = isinstance(object_fraction, numbers.Real) and not isinstance(object_fraction, bool)
    if not (is_number and 0.0 < float(object_fraction) <= 1.0):
        raise SVD3DError(
            f"object fraction must be in (0, 1], got {object_fraction!r}; "
            "pass e.g. --object-fraction 0.85 (the object's larger side as a fraction of the frame)"
        )
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 8:
        raise SVD3DError(f"size must be an integer of at least 8 pixels, got {size!r}; SV3D uses 576")
    object_fraction, size = float(object_fraction), int(size)
    name = _describe(img, name)
    chosen = _resolve_method(img, method, name)

    # 2. find the object: a full-resolution soft mask (alpha, rembg), or a soft mask at working resolution plus
    #    a background model (plain background; the edges are re-found at the output resolution in step 4)
    rgba = None
    if chosen == "rembg":
        soft = _rembg_mask(img)
        if soft is None:
            chosen = "background"
        else:
            rgba = img.convert("RGB")
            rgba.putalpha(Image.fromarray(np.round(soft * 255).astype(np.uint8), "L"))
    if chosen == "alpha":
        rgba = img.convert("RGBA")
    if rgba is not None:
        alpha_src = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
        why = "its alpha channel is fully transparent" if chosen == "alpha" else "rembg found nothing"
        _check_found(alpha_src >= 0.5, name, why)
        extent = _extent(alpha_src)
    else:
        work_alpha, model, (sx, sy) = _background_mask(img, name)
        left, top, right, bottom = _extent(work_alpha)
        extent = (left * sx, top * sy, right * sx, bottom * sy)
    left, top, right, bottom = extent  # sub-pixel edges of the object, in source pixels
    bbox = (
        max(0, round(left)),
        max(0, round(top)),
        min(img.width, max(round(left) + 1, round(right))),
        min(img.height, max(round(top) + 1, round(bottom))),
    )

    # 3. the square canvas, in source pixels: centred on the object, side = its larger side / object_fraction
    side = max(right - left, bottom - top, 1e-3) / object_fraction
    scale = size / side  # output pixels per source pixel
    x0, y0 = (left + right) / 2 - side / 2, (top + bottom) / 2 - side / 2
    # the part of the canvas inside the image, snapped to whole output pixels
    ox0, oy0 = max(0, int(np.ceil(-x0 * scale - 1e-6))), max(0, int(np.ceil(-y0 * scale - 1e-6)))
    ox1 = min(size, int(np.floor((img.width - x0) * scale + 1e-6)))
    oy1 = min(size, int(np.floor((img.height - y0) * scale + 1e-6)))
    box = (x0 + ox0 / scale, y0 + oy0 / scale, x0 + ox1 / scale, y0 + oy1 / scale)
    box = (max(0.0, box[0]), max(0.0, box[1]), min(float(img.width), box[2]), min(float(img.height), box[3]))
    out_w, out_h = ox1 - ox0, oy1 - oy0
    # crop to whole source pixels around the box first, so a huge photo is never resampled as a whole
    cx0, cy0 = int(np.floor(box[0])), int(np.floor(box[1]))
    cx1, cy1 = int(np.ceil(box[2])), int(np.ceil(box[3]))
    local_box = (box[0] - cx0, box[1] - cy0, box[2] - cx0, box[3] - cy0)

    def resample(channel: np.ndarray) -> np.ndarray:
        """(h, w) float crop -> (out_h, out_w) float32 on the output grid, LANCZOS."""
        out = Image.fromarray(channel.astype(np.float32), "F")
        return np.asarray(out.resize((out_w, out_h), Image.Resampling.LANCZOS, box=local_box), dtype=np.float32)

    # 4. resample the canvas region to the output size: premultiplied colour (h, w, 3) and alpha (h, w)
    if rgba is not None:
        # premultiplied, in float: the colour of (nearly) transparent pixels never bleeds into the edges
        arr = np.asarray(rgba.crop((cx0, cy0, cx1, cy1)), dtype=np.float32)
        a = arr[..., 3] / 255.0
        alpha = np.clip(resample(a), 0.0, 1.0)
        premult = np.stack([resample(arr[..., c] * a) for c in range(3)], axis=-1)
        premult = np.clip(premult, 0.0, 255.0 * alpha[..., None])  # Lanczos ringing must not tint the white
    else:
        crop = img.crop((cx0, cy0, cx1, cy1)).convert("RGB")
        colour = np.asarray(crop.resize((out_w, out_h), Image.Resampling.LANCZOS, box=local_box), dtype=np.float32)
        smooth = np.asarray(crop.resize((out_w, out_h), Image.Resampling.BILINEAR, box=local_box), dtype=np.float32)
        u, v = _grid(out_w, out_h, box, img.width, img.height)
        bg = model.colour_at(u, v)
        # the working mask carried onto the output grid: which parts are object was decided there
        work_box = (box[0] / sx, box[1] / sy, box[2] / sx, box[3] / sy)
        guide = Image.fromarray(work_alpha, "F").resize((out_w, out_h), Image.Resampling.BILINEAR, box=work_box)
        binary = _refine(np.asarray(guide) >= 0.5, smooth, bg, model, out_px_per_work_px=scale * max(sx, sy))
        alpha, colour = _soft_edges(binary, smooth, bg, model, colour=colour, edge_width=scale)
        premult = alpha[..., None] * np.clip(colour, 0.0, 255.0)

    # 5. composite on white, on the full square canvas
    mask = np.zeros((size, size), np.float32)
    mask[oy0:oy1, ox0:ox1] = alpha
    canvas = np.full((size, size, 3), 255.0, np.float32)
    canvas[oy0:oy1, ox0:ox1] = premult + (1.0 - alpha[..., None]) * 255.0
    image = Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8), "RGB")
    return PreparedObject(image=image, mask=mask, method=chosen, bbox=bbox, object_fraction=object_fraction)


def _extent(alpha: np.ndarray) -> tuple[float, float, float, float]:
    """(h, w) soft mask -> sub-pixel (left, top, right, bottom) of its 0.5 outline, in pixel-edge coordinates.

    A boundary pixel's coverage says where the edge crosses it: a column with coverage 0.3 left of a full one
    puts the left edge 0.3 pixel into that column."""

    def edges(profile: np.ndarray) -> tuple[float, float]:
        idx = np.nonzero(profile >= 0.5)[0]
        lo, hi = int(idx[0]), int(idx[-1])
        before = profile[lo - 1] if lo > 0 else 0.0
        after = profile[hi + 1] if hi + 1 < len(profile) else 0.0
        return lo + 1.0 - profile[lo] - before, hi + profile[hi] + after

    left, right = edges(np.clip(alpha.max(axis=0), 0.0, 1.0))
    top, bottom = edges(np.clip(alpha.max(axis=1), 0.0, 1.0))
    return float(left), float(top), float(right), float(bottom)


def fit_background(rgb: np.ndarray, *, name: str = "the input image") -> BackgroundModel:
    """Fit a smooth background colour to the image borders: (h, w, 3) float 0-255 -> BackgroundModel.

    The border band is cut into pieces whose median colours are fitted by a per-channel quadratic in (u, v),
    robustly (L1 by reweighting, then least squares on the inliers), so a gradient, a vignette or a shadow on
    part of the border, and an object touching the border, do not bias it. The threshold comes from how far the
    border's background pixels lie from the fit (median distance times 2.6 is about 4 sigma for Gaussian noise),
    with a floor for perfectly clean, synthetic backgrounds.
    """
    h, w, _ = rgb.shape
    depth = max(2, round(0.015 * min(h, w)))
    pieces, centres = [], []
    for edge in ("top", "bottom", "left", "right"):
        length = w if edge in ("top", "bottom") else h
        cuts = np.linspace(0, length, BORDER_SEGMENTS + 1).round().astype(int)
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            if b <= a:
                continue
            if edge == "top":
                ys, xs = slice(0, depth), slice(a, b)
            elif edge == "bottom":
                ys, xs = slice(h - depth, h), slice(a, b)
            elif edge == "left":
                ys, xs = slice(a, b), slice(0, depth)
            else:
                ys, xs = slice(a, b), slice(w - depth, w)
            pieces.append((ys, xs))
            centres.append(((xs.start + xs.stop) / w - 1.0, (ys.start + ys.stop) / h - 1.0))
    medians = np.array([np.median(rgb[ys, xs].reshape(-1, 3), axis=0) for ys, xs in pieces])  # (n, 3)
    centres = np.array(centres)  # (n, 2) normalised u, v of each piece
    terms = _poly_terms(centres[:, 0], centres[:, 1])  # (n, 6)

    # L1 fit by iteratively reweighted least squares, then drop outlying pieces and refit
    weights = np.ones(len(pieces))
    for _ in range(20):
        coeffs = _weighted_lstsq(terms, medians, weights)
        resid = np.linalg.norm(terms @ coeffs - medians, axis=1)
        weights = 1.0 / np.maximum(resid, 0.5)
    scale = 1.4826 * np.median(resid)
    inliers = resid <= max(3.0 * scale, 4.0)
    if inliers.mean() < 0.4:
        raise SVD3DError(
            f"no plain background found in {name}: only {inliers.mean():.0%} of its border has one smooth colour; "
            + NO_OBJECT_FIX
        )
    coeffs = _weighted_lstsq(terms, medians, inliers.astype(float))
    model = BackgroundModel(coeffs=coeffs, threshold=THRESHOLD_FLOOR, noise=0.0)

    # noise: pixel distances from the fit over the inlier pieces
    u, v = _grid(w, h, (0.0, 0.0, w, h), w, h)
    dists = []
    for (ys, xs), ok in zip(pieces, inliers, strict=True):
        if ok:
            d = np.linalg.norm(rgb[ys, xs] - model.colour_at(u[ys, xs], v[ys, xs]), axis=-1)
            dists.append(d.ravel())
    noise = float(np.median(np.concatenate(dists)))
    return BackgroundModel(coeffs=coeffs, threshold=max(THRESHOLD_FLOOR, 2.6 * noise + 2.0), noise=noise)


def segment_object(
    rgb: np.ndarray, bg: np.ndarray, model: BackgroundModel, *, name: str = "the input image"
) -> np.ndarray:
    """(h, w, 3) image and background colours -> (h, w) bool mask of the object.

    Pixels farther than the threshold from the background, minus soft shadows cast on the background and a
    dark matte fringe; the largest connected part plus the parts that are large and near it; holes filled,
    except large holes that are exactly the background colour (the see-through loop of a handle).
    """
    from scipy import ndimage

    d = np.linalg.norm(rgb - bg, axis=-1)  # (h, w) distance from the background
    found = d > model.threshold
    _check_found(found, name, "the image is one plain colour")
    mask = _object_parts(found & ~_cast_shadow(rgb, bg, found, model), d, model, name)
    mask = _peel_fringe(mask, rgb, bg, model)
    # where shadow or fringe was cut away the outline is ragged: smooth it there (only there, so thin parts such
    # as antennas elsewhere survive)
    cut = found & ~mask & ndimage.binary_dilation(mask, np.ones((3, 3), bool), iterations=2)
    if cut.any():
        zone = ndimage.binary_dilation(cut, np.ones((3, 3), bool), iterations=3)
        disk = np.hypot(*np.mgrid[-2:3, -2:3]) <= 2.0
        opened = ndimage.binary_opening(mask, disk)  # slivers of shadow left between the cuts
        smooth = ndimage.gaussian_filter(opened.astype(np.float32), 1.0) > 0.5
        mask = np.where(zone, smooth, mask)
    mask = _object_parts(mask, d, model, name)
    return _fill_holes(mask, d, model)


def _object_parts(fg: np.ndarray, d: np.ndarray, model: BackgroundModel, name: str) -> np.ndarray:
    """The largest connected part that stands out clearly somewhere, plus parts that are large and near it."""
    from scipy import ndimage

    labels, n = ndimage.label(fg, structure=np.ones((3, 3), bool))
    areas = np.bincount(labels.ravel(), minlength=n + 1).astype(float)
    # a part counts only if some of it is clearly distinct from the background (hysteresis)
    strong = np.bincount(labels[d > 2.0 * model.threshold], minlength=n + 1) > 0
    areas[~strong] = 0
    areas[0] = 0
    main = int(np.argmax(areas))
    if areas[main] < MIN_OBJECT_PIXELS:
        _check_found(np.zeros(1, bool), name, "nothing in it stands out from the background")
    keep = np.zeros(n + 1, bool)
    keep[main] = True
    others = np.nonzero((areas >= max(MIN_OBJECT_PIXELS, 0.002 * areas[main])) & ~keep)[0]
    if len(others):
        main_mask = labels == main
        ys, xs = np.nonzero(main_mask)
        extent = max(ys.max() - ys.min(), xs.max() - xs.min()) + 1
        gap = ndimage.distance_transform_edt(~main_mask)
        slices = ndimage.find_objects(labels)
        for i in others:
            part = slices[i - 1]
            keep[i] = gap[part][labels[part] == i].min() <= 0.1 * extent
    return keep[labels]


def _fill_holes(mask: np.ndarray, d: np.ndarray, model: BackgroundModel) -> np.ndarray:
    """Fill enclosed holes, except large ones whose pixels are the background colour to within its noise."""
    from scipy import ndimage

    filled = ndimage.binary_fill_holes(mask)
    holes = filled & ~mask
    if not holes.any():
        return filled
    labels, n = ndimage.label(holes)
    index = np.arange(1, n + 1)
    areas = ndimage.sum(holes, labels, index)
    level = ndimage.median(d, labels, index)
    see_through = (areas >= 0.002 * filled.sum()) & (level <= max(1.5 * model.noise, 0.35 * model.threshold))
    return filled & ~np.isin(labels, index[see_through])


def _shadow_coloured(rgb: np.ndarray, bg: np.ndarray, model: BackgroundModel, slack: float = 1.0) -> np.ndarray:
    """(..., 3) -> (...) bool: pixels whose colour is the background's, darkened (a shadow or a dark matte
    fringe). `slack` > 1 widens the colour tolerance (for outline pixels, where noise and compression add up)."""
    bg_norm2 = np.maximum((bg * bg).sum(-1), 1e-6)
    shade = (rgb * bg).sum(-1) / bg_norm2  # brightness relative to the background
    chroma = np.linalg.norm(rgb - shade[..., None] * bg, axis=-1)
    chroma_tol = slack * np.maximum(0.5 * model.threshold, 0.03 * np.sqrt(bg_norm2))
    return (shade > 0.25) & (shade < 1.0 + 0.05 * (slack - 1.0)) & (chroma < chroma_tol)


def _peel_fringe(mask: np.ndarray, rgb: np.ndarray, bg: np.ndarray, model: BackgroundModel) -> np.ndarray:
    """Peel a background-coloured fringe (a matte's dark rim, a halo) off the object's outline, a few pixels deep.

    A fringe pixel is background-coloured, possibly darkened, and not a blend of the background and the object
    colour just inside: it lies off the line from the background colour B to that object colour F, or less than a
    quarter of the way from B to F. A grey object's own outline (on that line, near F) is kept.
    """
    from scipy import ndimage

    h, w = mask.shape
    steps = max(2, round(0.004 * max(h, w)))
    ring = np.ones((3, 3), bool)
    core = ndimage.binary_erosion(mask, ring, iterations=steps + 2)
    if not core.any():
        return mask
    band = mask & ~ndimage.binary_erosion(mask, ring, iterations=steps, border_value=1)
    by, bx = np.nonzero(band)
    to_core, (iy, ix) = ndimage.distance_transform_edt(~core, return_indices=True)
    p, b = rgb[by, bx], bg[by, bx]
    fb, pb = rgb[iy[by, bx], ix[by, bx]] - b, p - b
    contrast2 = (fb * fb).sum(-1)
    c = (pb * fb).sum(-1) / np.maximum(contrast2, 1e-6)  # position along B -> F, unclipped
    off_line = np.linalg.norm(pb - c[:, None] * fb, axis=-1) > model.threshold
    mostly_background = c < 0.25  # on the line, but less than a quarter object: not part of the 0.5 outline
    # judged only against a clearly distinct object colour close by: thin parts (wires, legs) have no core near
    # them and are never peeled
    judged = (contrast2 > (3.0 * model.threshold) ** 2) & (to_core[by, bx] <= 2 * steps + 3)
    fringe = np.zeros_like(mask)
    fringe[by, bx] = judged & (off_line | mostly_background) & _shadow_coloured(p, b, model, slack=2.0)
    for _ in range(steps):
        outline = mask & ndimage.binary_dilation(~mask, ring, border_value=1)
        peel = outline & fringe
        if not peel.any():
            break
        mask = mask & ~peel
    return mask


def _cast_shadow(rgb: np.ndarray, bg: np.ndarray, fg: np.ndarray, model: BackgroundModel) -> np.ndarray:
    """(h, w) bool: foreground pixels that are a soft shadow cast on the background.

    A shadow pixel is the background colour darkened (same chroma), reached from the outside background without
    crossing a sharp colour edge (an object's silhouette is sharp, a cast shadow fades out softly), in a region
    lying lower than the object (shadows fall on the ground; a blurred, greyish part at the top is object).
    """
    from scipy import ndimage

    like = fg & _shadow_coloured(rgb, bg, model)
    if not like.any():
        return like
    # colour change per pixel (Sobel of a lightly blurred image), computed around the shadow-coloured pixels only
    left, top, right, bottom = mask_bbox(like)
    h, w = fg.shape
    win = np.s_[max(0, top - 4) : min(h, bottom + 4), max(0, left - 4) : min(w, right + 4)]
    smooth = ndimage.gaussian_filter(rgb[win], sigma=(1.0, 1.0, 0))
    grad = np.sqrt(sum(ndimage.sobel(smooth[..., c], axis=a) ** 2 for c in range(3) for a in (0, 1))) / 8.0
    passable = np.zeros_like(like)
    passable[win] = like[win] & (grad < max(0.5 * model.threshold, 4.0))  # soft: no sharp edge here
    ring = np.ones((3, 3), bool)
    outside = ~ndimage.binary_fill_holes(fg)  # the background around the object, not holes in it
    seeds = passable & ndimage.binary_dilation(outside, ring)
    if not seeds.any():
        return seeds
    shadow = ndimage.binary_propagation(seeds, mask=passable, structure=ring)
    # the shadow's steeper rim where it meets the object is still shadow-coloured: take it too
    shadow |= ndimage.binary_dilation(shadow, ring, iterations=2, mask=like)
    rest = fg & ~shadow
    if not rest.any():
        return np.zeros_like(shadow)
    object_y = np.nonzero(rest)[0].mean()
    labels, n = ndimage.label(shadow, structure=ring)
    mean_y = ndimage.mean(np.indices(shadow.shape)[0], labels, np.arange(1, n + 1))
    low = np.concatenate([[False], mean_y > object_y])
    return low[labels]


def _refine(
    guide: np.ndarray, rgb: np.ndarray, bg: np.ndarray, model: BackgroundModel, out_px_per_work_px: float
) -> np.ndarray:
    """The working-resolution mask carried to the output grid (`guide`, bool), with its outline re-found at the
    output resolution where that is finer (a small object in a large photo): near the outline a pixel is object
    when it is at least half covered, rgb = B + coverage * (F - B), F the object colour just inside."""
    from scipy import ndimage

    if out_px_per_work_px <= 1.25 or not guide.any():
        return guide
    r = int(np.ceil(out_px_per_work_px)) + 1
    ring = np.ones((3, 3), bool)
    core = ndimage.binary_erosion(guide, ring, iterations=r)
    if not core.any():
        return guide
    band = ndimage.binary_dilation(guide, ring, iterations=r) & ~core
    by, bx = np.nonzero(band)
    _, (iy, ix) = ndimage.distance_transform_edt(~core, return_indices=True)
    p, b = rgb[by, bx], bg[by, bx]
    fb = rgb[iy[by, bx], ix[by, bx]] - b
    contrast2 = (fb * fb).sum(-1)
    cover = ((p - b) * fb).sum(-1) / np.maximum(contrast2, 1e-6)
    misfit = np.linalg.norm(p - (b + np.clip(cover, 0, 1)[:, None] * fb), axis=-1)
    fits = (contrast2 > (3.0 * model.threshold) ** 2) & (misfit < model.threshold)
    out = core.copy()
    out[by, bx] = np.where(fits, cover >= 0.5, guide[by, bx])
    return out


def _soft_edges(
    binary: np.ndarray,
    rgb: np.ndarray,
    bg: np.ndarray,
    model: BackgroundModel,
    colour: np.ndarray | None = None,
    edge_width: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Binary mask -> (soft alpha (h, w) float32, colour (h, w, 3) with the background unmixed from edge pixels).

    At each boundary pixel the alpha is its coverage, rgb = B + alpha * (F - B), with F the colour of the nearest
    object pixel a few pixels inside and B the background there; where that model does not fit (low contrast,
    texture, thin parts) the alpha is a 1.5-pixel geometric ramp across the boundary instead. No stairs, no halo.
    `colour` (default: rgb) is the image whose edge pixels are unmixed; `edge_width` is how many pixels a sharp
    edge spreads over at least (more than 1 where the image was upsampled); blurrier edges are measured.
    """
    from scipy import ndimage

    colour = (rgb if colour is None else colour).astype(np.float32, copy=True)
    alpha = binary.astype(np.float32)
    if not binary.any():
        return alpha, colour
    # work in a window around the object only
    left, top, right, bottom = mask_bbox(binary)
    h, w = binary.shape
    pad = MAX_EDGE_SPREAD + 6
    win = np.s_[max(0, top - pad) : min(h, bottom + pad), max(0, left - pad) : min(w, right + pad)]
    m, p_img, b_img = binary[win], rgb[win], bg[win]

    inside = ndimage.distance_transform_edt(m)
    outside = ndimage.distance_transform_edt(~m)
    sd = np.where(m, inside - 0.5, 0.5 - outside)  # signed distance of pixel centres to the boundary, px
    spread = max(1.0, edge_width, _edge_spread(m, inside, sd, p_img, b_img, model))
    a_win = np.clip(0.5 + sd / max(EDGE_RAMP, spread), 0.0, 1.0).astype(np.float32)
    core = inside >= spread + 2.0
    band = np.abs(sd) < spread + 1.0
    c_win = colour[win]
    if core.any() and band.any():
        to_core, (iy, ix) = ndimage.distance_transform_edt(~core, return_indices=True)
        by, bx = np.nonzero(band)
        p, b = p_img[by, bx], b_img[by, bx]
        f = p_img[iy[by, bx], ix[by, bx]]  # (k, 3) the object colour nearest inside
        fb = f - b
        contrast2 = (fb * fb).sum(-1)
        cover = np.clip(((p - b) * fb).sum(-1) / np.maximum(contrast2, 1e-6), 0.0, 1.0)
        misfit = np.linalg.norm(p - (b + cover[:, None] * fb), axis=-1)
        usable = (contrast2 > (3.0 * model.threshold) ** 2) & (to_core[by, bx] <= spread + 3.0)
        ok = usable & (misfit < model.threshold)
        # second chance: the background next to the object darkened (a matte's dark fringe, a contact shadow),
        # rgb = cover * F + shade * (1 - cover) * B with shade in [0.25, 1]
        cover2, shade, misfit2 = _blend_with_shade(p, f, b)
        dark = usable & ~ok & (misfit2 < model.threshold) & (shade >= 0.25) & (shade <= 1.0)
        cover = np.where(dark, cover2, cover)
        base = np.where(dark, shade, 1.0)[:, None] * b  # the background as it is at this pixel
        fits = ok | dark
        a = np.where(fits, cover, a_win[by, bx])
        a_win[by, bx] = a
        # unmix: where the pixel is a blend of object and background, keep the object's part of it
        # elsewhere on the outline (noise, compression artefacts), take the object colour just inside
        outer = (sd[by, bx] <= 0.5) & (to_core[by, bx] <= spread + 3.0)
        unmixed = np.where(
            (fits & (cover > 0.1))[:, None],
            base + (c_win[by, bx] - base) / np.maximum(cover, 0.1)[:, None],
            np.where(((fits & (a < 0.999)) | (~fits & outer))[:, None], f, c_win[by, bx]),
        )
        c_win[by, bx] = np.clip(unmixed, 0, 255)
        # per-pixel estimates flicker along the outline: smooth the alpha along it (only there)
        a_win = np.where(band, ndimage.gaussian_filter(a_win, 0.7), a_win)
    alpha[win] = a_win
    colour[win] = c_win
    return alpha, colour


def _blend_with_shade(p: np.ndarray, f: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit (k, 3) colours p = cover * f + t * b by least squares -> (cover in [0, 1], shade = t / (1 - cover),
    distance of p from the fit)."""
    ff, fb, bb = (f * f).sum(-1), (f * b).sum(-1), (b * b).sum(-1)
    fp, bp = (f * p).sum(-1), (b * p).sum(-1)
    det = np.maximum(ff * bb - fb * fb, 1e-6)
    cover = np.clip((bb * fp - fb * bp) / det, 0.0, 1.0)
    t = np.clip((bp - cover * fb) / np.maximum(bb, 1e-6), 0.0, None)  # best t for the clipped cover
    misfit = np.linalg.norm(p - cover[:, None] * f - t[:, None] * b, axis=-1)
    shade = np.where(cover < 0.999, t / np.maximum(1.0 - cover, 1e-3), 1.0)
    return cover, shade, misfit


def _edge_spread(
    m: np.ndarray, inside: np.ndarray, sd: np.ndarray, rgb: np.ndarray, bg: np.ndarray, model: BackgroundModel
) -> float:
    """How many pixels the object's outline spreads over (1 for a sharp photo, more for a blurred or upsampled
    one): pixels part-way between background and object colour, per pixel of outline."""
    from scipy import ndimage

    core = inside >= MAX_EDGE_SPREAD + 1
    if not core.any():
        return 1.0
    band = np.abs(sd) < MAX_EDGE_SPREAD
    _, (iy, ix) = ndimage.distance_transform_edt(~core, return_indices=True)
    by, bx = np.nonzero(band)
    p, b = rgb[by, bx], bg[by, bx]
    fb = rgb[iy[by, bx], ix[by, bx]] - b
    contrast2 = (fb * fb).sum(-1)
    cover = np.clip(((p - b) * fb).sum(-1) / np.maximum(contrast2, 1e-6), 0.0, 1.0)
    misfit = np.linalg.norm(p - (b + cover[:, None] * fb), axis=-1)
    ok = (contrast2 > (3.0 * model.threshold) ** 2) & (misfit < model.threshold)
    outline = int(np.count_nonzero(m & (inside < 1.5)))
    if ok.sum() < 0.5 * outline:
        return 1.0  # too little clean contrast along the outline to tell
    between = np.count_nonzero(ok & (cover > 0.1) & (cover < 0.9))
    return float(np.clip(between / max(1, outline) / 0.8, 1.0, MAX_EDGE_SPREAD))  # 10-90% is 0.8 of a ramp


def _rembg_mask(img: Image.Image) -> np.ndarray | None:
    """(H, W) float32 soft mask from rembg's locally cached model; None when rembg cannot run here."""
    found = rembg_model_path()
    if found is None:
        return None
    path, session_name = found
    try:
        from rembg import new_session

        session = new_session(session_name, model_path=str(path))
        pred = session.predict(img.convert("RGB"))[0]
    except Exception as err:  # an older / newer rembg without local-path sessions: use the plain-background method
        logger.info(
            "rembg could not run from %s (%s: %s); using the plain-background method", path, type(err).__name__, err
        )
        return None
    mask = np.asarray(pred.convert("L").resize(img.size, Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    return mask


def _resolve_method(img: Image.Image, method: str, name: str) -> MaskMethod:
    if method not in MASK_METHODS:
        raise SVD3DError(f"mask method must be one of {', '.join(MASK_METHODS)}, got {method!r}")
    if method == "auto":
        return choose_mask_method(img)
    if method == "alpha" and not has_transparency(img):
        raise SVD3DError(f"{name} has no transparency to use as a mask; use mask method 'auto' or 'background'")
    if method == "rembg" and rembg_model_path() is None:
        raise SVD3DError(
            "rembg or its model is not available locally (looked in $U2NET_HOME, else ~/.u2net, for "
            + ", ".join(f for f, _ in REMBG_MODELS)
            + "); install rembg and download its model, or use mask method 'background'"
        )
    return method  # type: ignore[return-value]


def _describe(img: Image.Image, name: str | None) -> str:
    if name:
        return str(name)
    filename = getattr(img, "filename", "")
    return str(filename) if filename else f"the input image ({img.width}x{img.height})"


def _check_found(mask: np.ndarray, name: str, why: str) -> None:
    if int(np.count_nonzero(mask)) < 1:
        raise SVD3DError(f"no object found in {name} ({why}); {NO_OBJECT_FIX}")


def _working_copy(img: Image.Image) -> tuple[Image.Image, tuple[float, float]]:
    """RGB copy whose larger side is at most WORK_SIDE, and the source pixels per working pixel along x and y."""
    longest = max(img.size)
    if longest <= WORK_SIDE:
        return img.convert("RGB"), (1.0, 1.0)
    factor = longest // WORK_SIDE
    rgb = img.reduce(factor) if factor >= 2 else img  # fast box average by an integer factor first
    rgb = rgb.convert("RGB")
    scale = WORK_SIDE / max(rgb.size)
    if scale < 1.0:
        rgb = rgb.resize(
            (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))), Image.Resampling.BILINEAR
        )
    return rgb, (img.width / rgb.width, img.height / rgb.height)


def _grid(
    out_w: int, out_h: int, box: tuple[float, float, float, float], width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised source coordinates u, v in [-1, 1] of the pixel centres of an out_w x out_h resampling of `box`
    from a width x height source."""
    xs = box[0] + (np.arange(out_w) + 0.5) * (box[2] - box[0]) / out_w
    ys = box[1] + (np.arange(out_h) + 0.5) * (box[3] - box[1]) / out_h
    u, v = np.meshgrid(xs / width * 2.0 - 1.0, ys / height * 2.0 - 1.0)
    return u, v


def _poly_terms(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(...) u, v -> (..., 6) quadratic terms 1, u, v, uv, u^2, v^2."""
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    return np.stack([np.ones_like(u), u, v, u * v, u * u, v * v], axis=-1)


def _weighted_lstsq(terms: np.ndarray, values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    sw = np.sqrt(weights)[:, None]
    coeffs, *_ = np.linalg.lstsq(terms * sw, values * sw, rcond=None)
    return coeffs
