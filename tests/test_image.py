"""Input images of any mode and size: loaded, composited and fitted without distortion."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_test_image
from PIL import Image

from svd3d.errors import SVD3DError
from svd3d.image import composite_on_white, fit_cover, load_image, parse_size


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "CMYK", "I;16", "I", "F"])
def test_any_mode_loads(tmp_path, mode):
    base = make_test_image(40, 30)
    if mode == "I;16":
        arr = (np.asarray(base.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
        img = Image.fromarray(arr)
        assert img.mode.startswith("I;16")
    elif mode in ("I", "F"):
        img = base.convert("L").convert(mode)
    else:
        img = base.convert(mode)
    ext = {"CMYK": "jpg", "F": "tiff", "I": "tiff"}.get(mode, "png")
    path = tmp_path / f"img.{ext}"
    img.save(path)
    out = load_image(path)
    assert out.mode in ("RGB", "RGBA") and out.size == (40, 30)
    if mode in ("L", "I;16", "I"):  # grey levels survive the conversion
        grey = np.asarray(base.convert("L"), dtype=float)
        assert np.abs(np.asarray(out, dtype=float)[..., 0] - grey).max() <= 1.5


def test_palette_with_transparency_keeps_alpha(tmp_path):
    img = Image.new("P", (8, 8), 0)
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    img.putpixel((0, 0), 1)
    img.info["transparency"] = 0
    path = tmp_path / "p.png"
    img.save(path, transparency=0)
    out = load_image(path)
    assert out.mode == "RGBA" and out.getpixel((1, 1))[3] == 0 and out.getpixel((0, 0))[3] == 255


def test_exif_rotation_applied(tmp_path):
    img = make_test_image(60, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif.tobytes(), quality=95)
    assert load_image(path).size == (40, 60)


def test_permission_error_is_clear(tmp_path, monkeypatch):
    path = tmp_path / "x.png"
    make_test_image().save(path)

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Image, "open", denied)
    with pytest.raises(SVD3DError, match="permission denied"):
        load_image(path)


def test_composite_on_white():
    rgba = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    assert composite_on_white(rgba).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize("src,dst", [((400, 300), (1024, 576)), ((300, 400), (64, 64)), ((64, 64), (64, 64))])
def test_fit_cover_never_stretches(src, dst):
    # a circle must stay a circle: measure its aspect ratio after fitting
    w, h = src
    y, x = np.mgrid[0:h, 0:w]
    r = min(w, h) * 0.3
    disc = ((x - w / 2) ** 2 + (y - h / 2) ** 2 < r**2).astype(np.uint8) * 255
    out = np.asarray(fit_cover(Image.fromarray(disc).convert("RGB"), *dst))[..., 0] > 127
    assert out.shape == (dst[1], dst[0])
    ys, xs = np.nonzero(out)
    assert abs((xs.max() - xs.min()) / (ys.max() - ys.min()) - 1) < 0.06


def test_parse_size():
    assert parse_size("1024x576") == (1024, 576)
    assert parse_size(" 64 X 64 ") == (64, 64)
    with pytest.raises(SVD3DError, match="multiples of 8.*1020x576.*try 1024x576"):
        parse_size("1020x576")
    with pytest.raises(SVD3DError, match="WIDTHxHEIGHT"):
        parse_size("big")


def test_huge_image_refused(tmp_path, monkeypatch):
    import svd3d.image as image_mod

    monkeypatch.setattr(image_mod, "MAX_PIXELS", 1000)
    path = tmp_path / "big.png"
    make_test_image(100, 100).save(path)
    with pytest.raises(SVD3DError, match="downscale") as err:
        load_image(path)
    assert str(err.value) == f"input image {path} is 100x100, more than 1,000 pixels; downscale it first"
