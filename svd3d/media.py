"""Writing outputs: video files, frame folders and JSON, always through a temporary name renamed into place.

What svd3d may replace, and how a folder output is staged and swapped into place, is svd3d.outputs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from svd3d.errors import SVD3DError
from svd3d.outputs import atomic_file, replacing

VIDEO_SUFFIXES = (".mp4", ".gif", ".webp")


def output_format(out: Path) -> str:
    """'mp4', 'gif', 'webp' or 'frames' (a folder of PNGs: a path with no suffix). Checked before any work."""
    suffix = out.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        if suffix == ".mp4":
            try:
                import imageio_ffmpeg  # noqa: F401
            except ImportError:
                raise SVD3DError(
                    "writing MP4 needs imageio-ffmpeg (pip install imageio-ffmpeg); or write -o clip.gif"
                ) from None
        return suffix[1:]
    if suffix == "" or out.is_dir():
        return "frames"
    raise SVD3DError(
        f"cannot write {out}: output must end in .mp4, .gif or .webp, or be a folder (no suffix) for PNG frames"
    )


def run_json_path(out: Path) -> Path:
    """run.json beside a clip: inside a frames folder, or `<name>.run.json` next to a video file."""
    return out / "run.json" if output_format(out) == "frames" else out.with_name(out.stem + ".run.json")


PROMPT_IMAGE = "prompt.png"  # the image a text-to-image model made from --prompt, in a folder output


def prompt_image_path(out: Path) -> Path:
    """The image made from a prompt, beside a clip: inside a frames folder, or `<name>.prompt.png` next to a video
    file."""
    return out / PROMPT_IMAGE if output_format(out) == "frames" else out.with_name(out.stem + ".prompt.png")


def png_bytes(image: Image.Image) -> bytes:
    """`image` encoded as PNG, so its hash is known before it is written."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_json(path: Path, data: dict) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")


def write_frames_png(frames: np.ndarray, folder: Path) -> None:
    """(T, H, W, 3) uint8 -> folder/000.png, 001.png, ..."""
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:03d}.png")


def write_video(frames: np.ndarray, out: Path, fps: float) -> Path:
    """Write (T, H, W, 3) uint8 frames as .mp4 (H.264, yuv420p), .gif, .webp (animated) or a folder of PNGs."""
    fmt = output_format(out)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    if fmt == "frames":
        with replacing(out, "video") as tmp:
            write_frames_png(frames, tmp)
        return out
    with atomic_file(out) as tmp:
        if fmt == "mp4":
            _mp4(frames, tmp, fps)
        else:
            images = [Image.fromarray(f) for f in frames]
            duration = max(1, round(1000 / fps))
            kwargs = {"lossless": False, "quality": 90} if fmt == "webp" else {"optimize": False}
            images[0].save(
                tmp, format=fmt.upper(), save_all=True, append_images=images[1:], duration=duration, loop=0, **kwargs
            )
    return out


def _mp4(frames: np.ndarray, path: Path, fps: float) -> None:
    writer = mp4_writer(path, frames.shape[2], frames.shape[1], fps)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


def mp4_writer(path: Path, width: int, height: int, fps: float):
    """A started imageio-ffmpeg writer of an H.264 / yuv420p MP4 at `path`: `.send()` it (height, width, 3) uint8
    frames one at a time, then `.close()` it (frames are streamed to ffmpeg, never held in memory)."""
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=fps,
        codec="libx264",
        pix_fmt_in="rgb24",
        pix_fmt_out="yuv420p",
        quality=8,
        macro_block_size=1 if (width % 2 == 0 and height % 2 == 0) else 16,
        output_params=["-movflags", "+faststart", "-f", "mp4"],
    )
    writer.send(None)
    return writer


def contact_sheet(images: list, labels: list[str] | None = None, columns: int = 7, cell: int = 160) -> Image.Image:
    """A grid of thumbnails (PIL images or (H, W, 3|4) uint8 arrays), each with an optional caption below."""
    from PIL import ImageDraw

    thumbs = []
    for img in images:
        pil = Image.fromarray(img) if isinstance(img, np.ndarray) else img
        if pil.mode == "RGBA":
            pil = Image.alpha_composite(Image.new("RGBA", pil.size, (255, 255, 255, 255)), pil)
        pil = pil.convert("RGB")
        scale = cell / max(pil.size)
        small = scale > 1  # small images are enlarged with NEAREST, so their pixels stay visible as they are
        resample = Image.Resampling.NEAREST if small else Image.Resampling.LANCZOS
        pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), resample)
        thumbs.append(pil)
    caption = 14 if labels else 0
    columns = max(1, min(columns, len(thumbs)))
    rows = (len(thumbs) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * cell, rows * (cell + caption)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, thumb in enumerate(thumbs):
        x, y = (i % columns) * cell, (i // columns) * (cell + caption)
        sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))
        if labels:
            draw.text((x + 4, y + cell + 1), labels[i], fill=(40, 40, 40))
    return sheet
