"""Output writers: every format reads back, and a failed write leaves nothing behind."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from svd3d.errors import SVD3DError
from svd3d.media import output_format, write_video
from svd3d.outputs import atomic_file


def frames(t=6, h=48, w=64):
    """A smooth pattern moving right: compresses well, so a lossy codec must give back nearly the same pixels."""
    y, x = np.mgrid[0:h, 0:w]
    clip = [np.stack([(x + 4 * i) * 3 % 256, y * 5 % 256, np.full_like(x, 90)], -1) for i in range(t)]
    return np.stack(clip).astype(np.uint8)


def test_mp4_is_playable(tmp_path):
    import imageio.v3 as iio

    out = write_video(frames(), tmp_path / "clip.mp4", fps=7)
    back = np.stack(list(iio.imiter(out)))
    assert back.shape == (6, 48, 64, 3)
    meta = iio.immeta(out)
    assert abs(meta.get("fps", 7) - 7) < 0.01
    assert np.abs(back.astype(float) - frames().astype(float)).mean() < 12  # lossy, but the same pictures


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_animated_images(tmp_path, suffix):
    out = write_video(frames(), tmp_path / f"clip{suffix}", fps=10)
    with Image.open(out) as img:
        assert img.n_frames == 6 and img.size == (64, 48)


def test_png_folder(tmp_path):
    out = write_video(frames(), tmp_path / "frames", fps=7)
    names = sorted(p.name for p in out.iterdir())
    assert names == [".svd3d.json"] + [f"{i:03d}.png" for i in range(6)]  # the mark: svd3d may replace it
    assert np.array_equal(np.asarray(Image.open(out / "002.png")), frames()[2])


def test_png_folder_replaces_old_run(tmp_path):
    write_video(frames(6), tmp_path / "frames", fps=7)
    write_video(frames(3), tmp_path / "frames", fps=7)
    assert len(list((tmp_path / "frames").glob("*.png"))) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "result.json"
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_unknown_suffix():
    from pathlib import Path

    with pytest.raises(SVD3DError, match="clip.mov"):
        output_format(Path("clip.mov"))


def test_outputs_get_the_usual_permissions_even_from_safetensors(tmp_path):
    """safetensors writes 0600 files; what svd3d renames into place is readable as any output is (umask 022)."""
    import os
    import stat

    import torch
    from safetensors.torch import save_file

    from svd3d.outputs import replacing

    old = os.umask(0o022)
    try:
        with atomic_file(tmp_path / "one.safetensors") as tmp:
            save_file({"x": torch.zeros(2)}, str(tmp))
        with replacing(tmp_path / "model", "model") as tmp:
            (tmp / "unet").mkdir()
            save_file({"x": torch.zeros(2)}, str(tmp / "unet" / "w.safetensors"))
    finally:
        os.umask(old)
    for path in (tmp_path / "one.safetensors", tmp_path / "model" / "unet" / "w.safetensors"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert stat.S_IMODE((tmp_path / "model" / "unet").stat().st_mode) == 0o755
