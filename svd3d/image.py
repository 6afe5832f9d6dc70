"""Loading input images of any size and mode, and fitting them to a model's size without distortion; the small mask
helpers every stage shares (the object's pixels on a white background, a mask's bounding box).

Object segmentation and framing for orbit models is svd3d.segment; image metrics are svd3d.image_metrics."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from svd3d.errors import SVD3DError

MAX_PIXELS = 20000 * 20000  # refuse decompression bombs beyond this, with a clear message
WHITE_THRESHOLD = 0.04  # a pixel is background when every channel is within this of white (in [0, 1])


def load_image(path: str | Path) -> Image.Image:
    """Open an image file, fully decoded, EXIF rotation applied, as RGB or RGBA (alpha kept when present).

    Handles L, LA, P (with or without transparency), CMYK, 16-bit and float images.
    """
    path = Path(path)
    if not path.exists():
        raise SVD3DError(f"input image {path} does not exist; check the path")
    if not path.is_file():
        raise SVD3DError(f"input image {path} is not a file; pass an image file (PNG, JPEG, WebP)")
    if path.stat().st_size == 0:
        raise SVD3DError(f"input image {path} is empty (0 bytes); pass a valid image file")
    pillow_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # svd3d checks the size itself (below), before decoding, with its own limit
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise SVD3DError(
                    f"input image {path} is {img.width}x{img.height}, more than {MAX_PIXELS:,} pixels; downscale it first"
                )
            img.load()
            img = ImageOps.exif_transpose(img)
    except SVD3DError:
        raise  # too large: said above (SVD3DError is a ValueError, which the next handler would misname)
    except PermissionError:
        raise SVD3DError(f"cannot read input image {path}: permission denied; check the file's permissions") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise SVD3DError(
            f"{path} is not an image Pillow can read ({type(err).__name__}: {err}); use PNG, JPEG or WebP"
        ) from None
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit
    return to_rgb_or_rgba(img)


def to_rgb_or_rgba(img: Image.Image) -> Image.Image:
    """Normalise any Pillow mode to 8-bit RGB, or RGBA when the image carries transparency."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        peak = 1.0 if arr.max() <= 1.0 else arr.max()
        img = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        return img
    return img.convert("RGB")


def composite_on_white(img: Image.Image) -> Image.Image:
    """RGBA -> RGB over a white background; RGB unchanged."""
    if img.mode != "RGBA":
        return img.convert("RGB")
    background = Image.new("RGBA", img.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, img).convert("RGB")


def fit_cover(img: Image.Image, width: int, height: int) -> Image.Image:
    """Resize (LANCZOS) so the image covers width x height with its aspect ratio kept, then centre-crop the
    overflow. Never stretches: a 4:3 photo into 16:9 loses a band at the top and bottom."""
    scale = max(width / img.width, height / img.height)
    new_w, new_h = max(width, round(img.width * scale)), max(height, round(img.height * scale))
    if (new_w, new_h) != img.size:
        img = img.resize((new_w, new_h), Image.Resampling.LANCZOS)
    left, top = (new_w - width) // 2, (new_h - height) // 2
    return img.crop((left, top, left + width, top + height))


def parse_size(text: str) -> tuple[int, int]:
    """'1024x576' -> (1024, 576). Both sides must be positive multiples of 8 (the VAE works in 8x8 pixel blocks)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not match:
        raise SVD3DError(f"size must look like WIDTHxHEIGHT (e.g. 1024x576), got {text!r}")
    width, height = int(match[1]), int(match[2])
    check_size(width, height)
    return width, height


def check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise SVD3DError(f"width and height must be positive, got {width}x{height}")
    if width % 8 or height % 8:
        fix = f"{max(8, round(width / 8) * 8)}x{max(8, round(height / 8) * 8)}"
        raise SVD3DError(
            f"width and height must be multiples of 8 (the VAE works in 8x8 blocks), got {width}x{height}; try {fix}"
        )


def to_tensor(img: Image.Image):
    """RGB PIL image -> (1, 3, H, W) float32 tensor in [-1, 1]."""
    import torch

    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1)[None] * 2.0 - 1.0


def has_transparency(img: Image.Image) -> bool:
    """True for an RGBA (or LA / PA) image whose alpha channel is not fully opaque."""
    if img.mode not in ("RGBA", "LA", "PA", "RGBa", "La"):
        return False
    lo, _ = img.getchannel("A").getextrema()
    return lo < 255


def mask_from_white(rgb: np.ndarray, threshold: float = WHITE_THRESHOLD) -> np.ndarray:
    """(H, W, 3) float in [0, 1] on white -> (H, W) float32 coverage: 0 on white, ramping to 1 within 2 thresholds."""
    distance = (1.0 - rgb).max(axis=-1)
    return np.clip((distance - threshold) / threshold, 0.0, 1.0).astype(np.float32)


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(h, w) bool -> (left, top, right, bottom), right/bottom exclusive."""
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
