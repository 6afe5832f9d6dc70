"""Training clips cut from real videos, in the format of svd3d.training.data: video files (MP4, WebM, MOV, MKV, AVI via
imageio-ffmpeg; GIF / animated WebP via Pillow) and subfolders of numbered PNG / JPEG frames, centre-cropped square,
area-resized, cut into windows; each window's motion bucket measured from its frames
(svd3d.training.data.motion_bucket), as for synthetic clips (svd3d.training.clips).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from svd3d.errors import SVD3DError
from svd3d.training.data import MOTION_SCALE, ClipData, motion_bucket, whole_number

log = logging.getLogger(__name__)

DEFAULT_FOLDER_FPS = 7.0  # fps of a folder of frames (they carry no rate); SVD's default fps conditioning
FFMPEG_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v")
ANIMATION_SUFFIXES = (".gif", ".webp")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")


def _square(frame: np.ndarray, size: int):
    """Any (H, W[, C]) frame -> (size, size, 3) uint8: centre square crop, area resize."""
    from PIL import Image

    img = Image.fromarray(np.asarray(frame)).convert("RGB")
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    img = img.crop((left, top, left + side, top + side))
    return np.asarray(img.resize((size, size), Image.Resampling.BOX))


_DIGITS = re.compile(r"(\d+)(?!.*\d)")  # the last run of digits in a name


def _read_frame_folder(folder: Path, size: int) -> tuple[np.ndarray, float]:
    from PIL import Image

    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES]
    numbered = []
    for p in files:
        match = _DIGITS.search(p.stem)
        if match is None:
            raise SVD3DError(f"frame {p} has no number in its name; name frames 000.png, 001.png, ... in order")
        numbered.append((int(match.group(1)), p))
    numbered.sort()
    frames = []
    for _, p in numbered:
        try:
            with Image.open(p) as img:
                frames.append(_square(np.asarray(img.convert("RGB")), size))
        except OSError as err:
            raise SVD3DError(f"cannot read frame {p}: {err}") from None
    return np.stack(frames) if frames else np.zeros((0, size, size, 3), np.uint8), DEFAULT_FOLDER_FPS


def _read_video(path: Path, size: int) -> tuple[np.ndarray, float]:
    """One video file -> (T, size, size, 3) uint8 and its fps, frame by frame (full-size frames are not kept)."""
    import imageio.v2 as iio2
    import imageio.v3 as iio

    try:
        if path.suffix.lower() in FFMPEG_SUFFIXES:
            with iio2.get_reader(path, format="FFMPEG") as reader:
                fps = float(reader.get_meta_data().get("fps") or 0)
                frames = [_square(f, size) for f in reader]
        else:
            duration = iio.immeta(path, plugin="pillow").get("duration") or 0  # ms per frame
            fps = 1000.0 / float(duration) if duration else 0.0
            frames = [_square(f, size) for f in iio.imiter(path, plugin="pillow", mode="RGB")]
    except Exception as err:  # imageio and ffmpeg raise many types for bad files
        raise SVD3DError(f"cannot read video {path}: {type(err).__name__}: {str(err).splitlines()[0][:200]}") from None
    if not np.isfinite(fps) or fps <= 0:
        raise SVD3DError(f"video {path} does not say its frame rate; convert it to MP4 with a frame rate")
    return np.stack(frames) if frames else np.zeros((0, size, size, 3), np.uint8), fps


def find_clips(folder: Path) -> list[Path]:
    """The clips in a folder: video files and subfolders holding frames, sorted by name (hidden ones skipped)."""
    if not folder.is_dir():
        raise SVD3DError(f"video folder {folder} does not exist")
    clips, loose, ignored = [], [], []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        suffix = p.suffix.lower()
        if p.is_dir() and any(q.suffix.lower() in FRAME_SUFFIXES for q in p.iterdir()):
            clips.append(p)
        elif p.is_file() and suffix in FFMPEG_SUFFIXES + ANIMATION_SUFFIXES:
            clips.append(p)
        elif p.is_file() and suffix in FRAME_SUFFIXES:
            loose.append(p.name)
        else:
            ignored.append(p.name)
    if loose:
        raise SVD3DError(
            f"{folder} holds loose frames ({', '.join(loose[:3])}); put each clip's frames in its own subfolder"
        )
    if ignored:
        log.info("ignoring %d entries of %s that are not clips: %s", len(ignored), folder, ", ".join(ignored[:5]))
    if not clips:
        raise SVD3DError(
            f"no clips in {folder}: expected {', '.join(FFMPEG_SUFFIXES + ANIMATION_SUFFIXES)} files or subfolders "
            f"of numbered {', '.join(FRAME_SUFFIXES)} frames"
        )
    return clips


def load_video_folder(folder: str | Path, *, size: int = 64, frames: int = 14, stride: int | None = None) -> ClipData:
    """Every clip in `folder` (`find_clips`) as windows of `frames` consecutive frames, `stride` frames apart
    (default `frames`: windows do not overlap), each centre-cropped square and area-resized to `size`.

    fps comes from the file (GIF: its frame duration; frame folders: DEFAULT_FOLDER_FPS, 7). A window is named
    "<file or folder name>#<first frame>"; its motion bucket is measured with `motion_bucket`. A clip shorter than
    `frames` is an error naming it.
    """
    folder = Path(folder)
    size = whole_number("size", size, 8, unit="pixels")
    frames = whole_number("frames", frames, 2, unit="frames per window")
    stride = whole_number("stride", frames if stride is None else stride, 1, unit="frames between windows")
    windows, rates, names, record = [], [], [], []
    for path in find_clips(folder):
        clip, fps = _read_frame_folder(path, size) if path.is_dir() else _read_video(path, size)
        if len(clip) < frames:
            raise SVD3DError(
                f"clip {path} has {len(clip)} frames, fewer than frames={frames}; remove it or ask for fewer frames"
            )
        starts = range(0, len(clip) - frames + 1, stride)
        windows += [clip[a : a + frames] for a in starts]
        rates += [fps] * len(starts)
        names += [f"{path.name.replace('#', '_')}#{a:04d}" for a in starts]
        record.append({"clip": path.name, "frames": len(clip), "fps": round(fps, 4), "windows": len(starts)})
    log.info("read %d clips from %s: %d windows of %d frames", len(record), folder, len(windows), frames)
    data = np.stack(windows)
    source = {
        "generator": "svd3d.training.videos.load_video_folder",
        "settings": {"size": size, "frames": frames, "stride": stride, "motion_scale": MOTION_SCALE},
        "folder": str(folder),
        "clips": record,
    }
    motion = np.array([motion_bucket(w) for w in data], np.float32)
    return ClipData(frames=data, fps=np.array(rates, np.float32), motion=motion, names=names, source=source)
