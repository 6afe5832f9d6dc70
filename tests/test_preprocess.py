"""Object preprocessing for the orbit pipeline: masks from alpha / plain backgrounds, framing, compositing."""

from __future__ import annotations

import importlib.machinery
import sys
import time
import types

import numpy as np
import pytest
from PIL import Image

from svd3d.errors import SVD3DError
from svd3d.image import load_image
from svd3d.segment import object_mask, object_mask_and_method, prepare_object

SIZE = 576


@pytest.fixture(autouse=True)
def _no_rembg(monkeypatch, tmp_path):
    """Tests see no rembg model (whatever this machine has cached), unless a test installs a fake one."""
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "u2net-empty"))


def shape_coverage(width: int, height: int, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """(h, w) float coverage of a vase-like object: an ellipse body with a rectangular neck, 1-pixel anti-aliased.
    Non-convex, with a corner and a concave waist, so both the silhouette and its edges are exercised."""
    y, x = np.mgrid[0:height, 0:width] + 0.5
    body = (np.hypot((x - cx) / rx, (y - cy) / ry) - 1.0) * min(rx, ry)  # approximate signed distance, px
    neck = np.maximum(np.abs(x - cx) - rx * 0.35, np.abs(y - (cy - ry)) - ry * 0.45)
    sdf = np.minimum(body, neck)
    return np.clip(0.5 - sdf, 0.0, 1.0)


def compose(bg: np.ndarray, fg_colour, coverage: np.ndarray, noise: float = 0.0, seed: int = 0) -> Image.Image:
    """bg (h, w, 3) float, object colour (3,) with vertical shading, coverage (h, w) -> RGB image."""
    h, w = coverage.shape
    shading = np.linspace(1.1, 0.8, h)[:, None, None]
    obj = np.clip(np.asarray(fg_colour, np.float64) * shading, 0, 255) * np.ones((1, w, 1))
    img = coverage[..., None] * obj + (1.0 - coverage[..., None]) * bg
    if noise:
        img = img + np.random.default_rng(seed).normal(0.0, noise, img.shape)
    return Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8), "RGB")


def flat(width: int, height: int, colour) -> np.ndarray:
    return np.ones((height, width, 3)) * np.asarray(colour, np.float64)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    return cols[0], rows[0], cols[-1] + 1, rows[-1] + 1


def assert_framed(prepared, object_fraction: float = 0.85, size: int = SIZE) -> None:
    """Object centred (bbox centre within 2 px), larger side object_fraction of the canvas (within 2 px),
    background pure white."""
    assert prepared.image.mode == "RGB" and prepared.image.size == (size, size)
    assert prepared.mask.shape == (size, size) and prepared.mask.dtype == np.float32
    assert 0.0 <= prepared.mask.min() and prepared.mask.max() <= 1.0
    left, top, right, bottom = bbox(prepared.mask > 0.5)
    assert abs((left + right) / 2 - size / 2) <= 2 and abs((top + bottom) / 2 - size / 2) <= 2
    assert abs(max(right - left, bottom - top) - object_fraction * size) <= 2
    rgb = np.asarray(prepared.image)
    assert (rgb[prepared.mask == 0] == 255).all()
    # away from the object (3 px of edge blending) the canvas is white
    from scipy import ndimage

    far = ~ndimage.binary_dilation(prepared.mask > 0, iterations=3)
    assert far.any() and (rgb[far] == 255).all()


# --- masks from a plain background ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bg", "colour"),
    [
        ((60, 120, 200), (230, 80, 40)),  # coloured background
        ((255, 255, 255), (90, 90, 100)),  # white background, a grey object (must not pass for a shadow)
        ((127, 127, 127), (240, 240, 240)),  # grey background, a white object
        ((20, 20, 20), (200, 170, 60)),  # black background
    ],
)
def test_plain_background_mask(bg, colour):
    cov = shape_coverage(400, 300, 210, 160, 110, 90)
    img = compose(flat(400, 300, bg), colour, cov, noise=2.0)
    mask, method = object_mask_and_method(img)
    assert method == "background"
    assert mask.shape == (300, 400) and mask.dtype == np.float32
    assert 0.0 <= mask.min() and mask.max() <= 1.0
    assert iou(mask > 0.5, cov > 0.5) >= 0.95
    # soft edges: some pixels strictly between 0 and 1, all on the outline
    partial = (mask > 0.02) & (mask < 0.98)
    assert partial.any() and partial.sum() < 0.1 * (cov > 0.5).sum()


def test_gradient_background_with_soft_shadow():
    """A lit sweep (vertical and horizontal gradient) and a soft cast shadow under the object: the shadow is
    background, not object."""
    w, h = 480, 360
    y, x = np.mgrid[0:h, 0:w]
    bg = (235 - 50 * y / h - 20 * x / w)[..., None] * np.array([1.0, 0.98, 0.95])
    from scipy import ndimage

    shadow = ndimage.gaussian_filter(((x - 250) / 150) ** 2 + ((y - 300) / 28) ** 2 < 1.0, 10.0).astype(float)
    bg = bg * (1.0 - 0.4 * shadow[..., None])
    cov = shape_coverage(w, h, 240, 190, 100, 110)
    img = compose(bg, (40, 110, 190), cov, noise=2.0)
    mask = object_mask(img)
    assert iou(mask > 0.5, cov > 0.5) >= 0.95
    assert mask[330:345, 150:350].max() < 0.5  # the shadow's far part, below the object
    assert_framed(prepare_object(img))


def test_object_touching_the_border():
    cov = shape_coverage(300, 300, 150, 230, 90, 100)  # cut off by the bottom edge
    img = compose(flat(300, 300, (250, 250, 250)), (180, 40, 40), cov, noise=1.5)
    assert iou(object_mask(img) > 0.5, cov > 0.5) >= 0.95
    prepared = prepare_object(img)
    assert_framed(prepared)
    assert prepared.bbox[3] == 300


def test_hole_in_the_object_is_filled():
    """Object regions that look like the background (a white label, a specular highlight) are object."""
    cov = shape_coverage(400, 320, 200, 170, 120, 100)
    img = np.asarray(compose(flat(400, 320, (255, 255, 255)), (200, 60, 30), cov), np.float64).copy()
    img[150:200, 160:240] = (250, 249, 246)  # a near-white label, 6% of the object
    img[120:128, 230:238] = 255  # a blown-out highlight, exactly the background colour
    img = Image.fromarray(img.astype(np.uint8))
    mask = object_mask(img)
    assert mask[150:200, 160:240].min() > 0.99 and mask[120:128, 230:238].min() > 0.99
    assert iou(mask > 0.5, cov > 0.5) >= 0.95


def test_see_through_handle_stays_background():
    """A loop (a mug handle) shows the background through it: that hole is not filled."""
    w, h = 400, 300
    cov = shape_coverage(w, h, 170, 160, 100, 100)
    y, x = np.mgrid[0:h, 0:w] + 0.5
    ring = np.abs(np.hypot(x - 280, y - 160) - 50) - 9  # the handle: a ring of width 18 px
    cov = np.maximum(cov, np.clip(0.5 - ring, 0, 1))
    img = compose(flat(w, h, (128, 128, 128)), (220, 70, 40), cov, noise=1.0)
    mask = object_mask(img)
    assert mask[150:170, 285:310].max() < 0.5  # inside the loop, right of the body
    assert iou(mask > 0.5, cov > 0.5) >= 0.95


@pytest.mark.parametrize("noise", [0.0, 3.0])
def test_blank_image_is_an_error(noise):
    img = compose(flat(200, 150, (240, 240, 240)), (0, 0, 0), np.zeros((150, 200)), noise=noise)
    with pytest.raises(SVD3DError, match="no object found in .*plain background"):
        prepare_object(img)
    with pytest.raises(SVD3DError, match="no object found"):
        object_mask(img, name="blank.png")


def test_fully_transparent_image_is_an_error(tmp_path):
    path = tmp_path / "empty.png"
    Image.new("RGBA", (64, 64), (255, 0, 0, 0)).save(path)
    with pytest.raises(SVD3DError, match=r"no object found in .*empty\.png.*transparent"):
        prepare_object(load_image(path), name=str(path))


# --- alpha -----------------------------------------------------------------------------------------------------


def test_alpha_channel_is_the_mask():
    cov = shape_coverage(320, 400, 150, 220, 80, 120)
    rgb = np.zeros((400, 320, 3), np.uint8)  # transparent pixels are black: they must not bleed into the edges
    rgb[...] = (30, 160, 90)
    alpha = np.round(cov * 255).astype(np.uint8)
    img = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    mask, method = object_mask_and_method(img)
    assert method == "alpha"
    np.testing.assert_allclose(mask, alpha / 255.0, atol=1e-6)
    prepared = prepare_object(img, object_fraction=0.7)
    assert prepared.method == "alpha"
    assert_framed(prepared, 0.7)
    # premultiplied resampling: edge pixels are blends of the object colour and white, never darker
    out = np.asarray(prepared.image, np.float64)
    edge = (prepared.mask > 0.05) & (prepared.mask < 0.95)
    expected = prepared.mask[..., None] * np.array([30, 160, 90]) + (1 - prepared.mask[..., None]) * 255
    assert np.abs(out[edge] - expected[edge]).max() <= 3


def test_opaque_rgba_uses_the_background_method():
    cov = shape_coverage(200, 200, 100, 110, 60, 60)
    img = compose(flat(200, 200, (255, 255, 255)), (200, 30, 30), cov).convert("RGBA")
    assert object_mask_and_method(img)[1] == "background"


# --- framing ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "rx", "ry"), [(600, 300, 200, 60), (300, 600, 50, 160), (500, 500, 40, 40)]
)
@pytest.mark.parametrize("object_fraction", [0.85, 0.5, 1.0])
def test_framing_uses_the_larger_side(width, height, rx, ry, object_fraction):
    """Wide, tall and small objects: the larger side is object_fraction of the canvas, and the object is centred
    (the reference script took the canvas side from the image height)."""
    cov = shape_coverage(width, height, width * 0.4, height * 0.55, rx, ry)
    img = compose(flat(width, height, (70, 70, 80)), (250, 200, 40), cov)
    prepared = prepare_object(img, object_fraction=object_fraction)
    assert_framed(prepared, object_fraction)
    left, top, right, bottom = prepared.bbox
    gl, gt, gr, gb = bbox(cov > 0.5)
    assert max(abs(left - gl), abs(top - gt), abs(right - gr), abs(bottom - gb)) <= 2


def test_other_sizes():
    cov = shape_coverage(300, 200, 150, 110, 90, 60)
    img = compose(flat(300, 200, (255, 255, 255)), (20, 90, 200), cov)
    assert_framed(prepare_object(img, size=64), size=64)
    assert_framed(prepare_object(img, size=1024), size=1024)


@pytest.mark.parametrize("bad", [0, 0.0, -0.5, 1.01, 2, float("nan"), "0.8"])
def test_bad_object_fraction(bad):
    img = compose(flat(64, 64, (255, 255, 255)), (200, 0, 0), shape_coverage(64, 64, 32, 36, 15, 15))
    with pytest.raises(SVD3DError, match=r"object fraction must be in \(0, 1\].*--object-fraction"):
        prepare_object(img, object_fraction=bad)


def test_bad_method():
    img = compose(flat(64, 64, (255, 255, 255)), (200, 0, 0), shape_coverage(64, 64, 32, 36, 15, 15))
    with pytest.raises(SVD3DError, match="mask method"):
        object_mask(img, method="magic")
    with pytest.raises(SVD3DError, match="no transparency"):
        object_mask(img, method="alpha")
    with pytest.raises(SVD3DError, match="rembg"):
        object_mask(img, method="rembg")


def test_very_large_photo_is_quick():
    """A 6000 x 4000 photo with a small object off-centre: never resampled as a whole, still precise."""
    w, h = 6000, 4000
    small = shape_coverage(w // 8, h // 8, 500 / 8 * 2, 300 / 8 * 2, 300 / 8, 200 / 8)  # 750 x 500 layout
    cov = np.asarray(Image.fromarray(small.astype(np.float32), "F").resize((w, h), Image.Resampling.BILINEAR))
    small_img = compose(flat(w // 8, h // 8, (245, 245, 240)), (150, 30, 120), small, noise=2.0)
    img = small_img.resize((w, h), Image.Resampling.BILINEAR)
    start = time.perf_counter()
    prepared = prepare_object(img)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"prepare_object took {elapsed:.1f} s on a 6000x4000 photo"
    assert_framed(prepared)
    left, top, right, bottom = prepared.bbox
    gl, gt, gr, gb = bbox(cov > 0.5)
    assert max(abs(left - gl), abs(top - gt), abs(right - gr), abs(bottom - gb)) <= 12  # 2 px at 1/6 scale
    mask = object_mask(img)
    assert mask.shape == (h, w)
    assert iou(mask[::4, ::4] > 0.5, cov[::4, ::4] > 0.5) >= 0.95


# --- inputs of any mode, through load_image ----------------------------------------------------------------------


def _scene() -> tuple[Image.Image, np.ndarray]:
    cov = shape_coverage(240, 200, 120, 110, 70, 60)
    return compose(flat(240, 200, (250, 250, 250)), (40, 60, 170), cov), cov


@pytest.mark.parametrize(
    ("mode", "suffix"),
    [("RGB", ".png"), ("RGB", ".jpg"), ("L", ".png"), ("P", ".png"), ("CMYK", ".jpg"), ("I;16", ".png")],
)
def test_any_image_mode(tmp_path, mode, suffix):
    img, cov = _scene()
    if mode == "I;16":
        grey = np.asarray(img.convert("L"), np.uint16) * 257
        img = Image.fromarray(grey)
    elif mode == "P":
        img = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    else:
        img = img.convert(mode)
    path = tmp_path / f"input{suffix}"
    img.save(path, quality=92) if suffix == ".jpg" else img.save(path)
    loaded = load_image(path)
    prepared = prepare_object(loaded, name=str(path))
    assert prepared.method == "background"
    assert_framed(prepared)
    assert iou(object_mask(loaded) > 0.5, cov > 0.5) >= 0.95


@pytest.mark.parametrize("mode", ["LA", "PA"])
def test_transparent_modes(tmp_path, mode):
    cov = shape_coverage(160, 160, 80, 85, 50, 50)
    rgba = Image.fromarray(np.dstack([np.full((160, 160, 3), 90, np.uint8), np.round(cov * 255).astype(np.uint8)]))
    img = rgba.convert("LA") if mode == "LA" else rgba.convert("P").convert("RGBA")
    if mode == "PA":  # a palette image with a transparent index
        img = Image.new("P", (160, 160), 0)
        img.putpalette([255, 255, 255, 90, 90, 90] + [0] * 762)
        img.putdata(list((cov.ravel() > 0.5).astype(int)))
        img.info["transparency"] = 0
    path = tmp_path / "input.png"
    img.save(path, transparency=0) if mode == "PA" else img.save(path)
    prepared = prepare_object(load_image(path))
    assert prepared.method == "alpha"
    assert_framed(prepared)


def test_exif_rotated_photo(tmp_path):
    img, cov = _scene()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    path = tmp_path / "rotated.jpg"
    img.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif, quality=95)
    loaded = load_image(path)
    assert loaded.size == img.size
    assert iou(object_mask(loaded) > 0.5, cov > 0.5) >= 0.95


# --- rembg: only from a model already on disk, never a download -----------------------------------------------


def _fake_rembg(monkeypatch, calls: list) -> None:
    module = types.ModuleType("rembg")
    module.__spec__ = importlib.machinery.ModuleSpec("rembg", None)

    class Session:
        def predict(self, img):
            calls.append(("predict", img.size))
            mask = np.zeros((img.height, img.width), np.uint8)
            mask[img.height // 4 : img.height * 3 // 4, img.width // 4 : img.width * 3 // 4] = 255
            return [Image.fromarray(mask, "L")]

    def new_session(name, **kwargs):
        calls.append(("new_session", name, kwargs))
        if "model_path" not in kwargs:
            raise AssertionError("would download a model")
        return Session()

    module.new_session = new_session
    monkeypatch.setitem(sys.modules, "rembg", module)


def test_rembg_used_only_when_its_model_is_cached(monkeypatch, tmp_path):
    calls: list = []
    _fake_rembg(monkeypatch, calls)
    img, _ = _scene()
    home = tmp_path / "u2net"
    home.mkdir()
    monkeypatch.setenv("U2NET_HOME", str(home))
    assert object_mask_and_method(img)[1] == "background"  # rembg importable, no model on disk
    assert calls == []

    (home / "u2net.onnx").write_bytes(b"onnx")
    prepared = prepare_object(img)
    assert prepared.method == "rembg"
    assert calls[0] == ("new_session", "u2net_custom", {"model_path": str(home / "u2net.onnx")})
    assert_framed(prepared)
