"""Training clips cut from real videos, in the format of svd3d.training.data: video files (MP4, WebM, MOV, MKV, AVI via
imageio-ffmpeg; GIF / animated WebP via Pillow) and subfolders of numbered PNG / JPEG frames, centre-cropped square,
area-resized, cut into windows; each window's motion bucket measured from its frames
(svd3d.training.data.motion_bucket), as for synthetic clips (svd3d.training.clips). A folder `svd3d curate` wrote
(svd3d.training.curate; it holds curation.json) gives its kept clips only.

The readers here (`clip_fps`, `iter_frames`: one full-size frame at a time) are also curation's.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from svd3d.errors import SVD3DError
from svd3d.training.data import MOTION_SCALE, ClipData, motion_bucket, whole_number

log = logging.getLogger(__name__)

DEFAULT_FOLDER_FPS = 7.0  # fps of a folder of frames (they carry no rate); SVD's default fps conditioning
FFMPEG_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v")
ANIMATION_SUFFIXES = (".gif", ".webp")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
CURATION = "curation.json"  # the manifest of a folder `svd3d curate` wrote (svd3d.training.curate)


def _square(frame: np.ndarray, size: int):
    """Any (H, W[, C]) frame -> (size, size, 3) uint8: centre square crop, area resize."""
    from PIL import Image

    img = Image.fromarray(np.asarray(frame)).convert("RGB")
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    img = img.crop((left, top, left + side, top + side))
    return np.asarray(img.resize((size, size), Image.Resampling.BOX))


_DIGITS = re.compile(r"(\d+)(?!.*\d)")  # the last run of digits in a name


def _numbered_frames(folder: Path) -> list[Path]:
    """The frame files of a frame folder in the order of the last number in their names."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES]
    numbered = []
    for p in files:
        match = _DIGITS.search(p.stem)
        if match is None:
            raise SVD3DError(f"frame {p} has no number in its name; name frames 000.png, 001.png, ... in order")
        numbered.append((int(match.group(1)), p))
    return [p for _, p in sorted(numbered)]


def _read_error(path: Path, err: Exception) -> SVD3DError:
    what = "frame" if path.suffix.lower() in FRAME_SUFFIXES else "video"
    return SVD3DError(f"cannot read {what} {path}: {type(err).__name__}: {str(err).splitlines()[0][:200]}")


def clip_fps(path: Path) -> float:
    """Frames per second of a clip: the video file's own rate (GIF / WebP: from the frame duration), or
    DEFAULT_FOLDER_FPS for a folder of frames. An unreadable file, or one with no rate, is an SVD3DError."""
    import imageio.v2 as iio2
    import imageio.v3 as iio

    if path.is_dir():
        return DEFAULT_FOLDER_FPS
    try:
        if path.suffix.lower() in FFMPEG_SUFFIXES:
            with iio2.get_reader(path, format="FFMPEG") as reader:
                fps = float(reader.get_meta_data().get("fps") or 0)
        else:
            duration = iio.immeta(path, plugin="pillow").get("duration") or 0  # ms per frame
            fps = 1000.0 / float(duration) if duration else 0.0
    except Exception as err:  # imageio and ffmpeg raise many types for bad files
        raise _read_error(path, err) from None
    if not np.isfinite(fps) or fps <= 0:
        raise SVD3DError(f"video {path} does not say its frame rate; convert it to MP4 with a frame rate")
    return fps


def iter_frames(path: Path) -> Iterator[np.ndarray]:
    """The frames of a clip (a video file or a folder of numbered frames), one (H, W, 3) uint8 RGB array at a time
    at full size, so a long video never sits in memory. A file that cannot be decoded, at the start or half-way,
    is an SVD3DError naming it."""
    import imageio.v2 as iio2
    import imageio.v3 as iio
    from PIL import Image

    if path.is_dir():
        for frame in _numbered_frames(path):
            try:
                with Image.open(frame) as img:
                    pixels = np.asarray(img.convert("RGB"))
            except OSError as err:
                raise _read_error(frame, err) from None
            yield pixels
        return
    try:
        if path.suffix.lower() in FFMPEG_SUFFIXES:
            reader = iio2.get_reader(path, format="FFMPEG")
            frames = iter(reader)
        else:
            reader = None
            frames = iio.imiter(path, plugin="pillow", mode="RGB")
        try:
            for frame in frames:
                yield np.asarray(frame)
        finally:
            if reader is not None:
                reader.close()
    except SVD3DError:
        raise
    except Exception as err:  # imageio and ffmpeg raise many types for bad files
        raise _read_error(path, err) from None


def read_clip(path: Path, size: int) -> tuple[np.ndarray, float]:
    """A whole clip -> (T, size, size, 3) uint8 frames, centre-cropped square and area-resized, and its fps."""
    fps = clip_fps(path)
    frames = [_square(f, size) for f in iter_frames(path)]
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


def read_curation(folder: Path) -> dict:
    """The manifest of a folder `svd3d curate` wrote (svd3d.training.curate), checked: each kept clip names a file
    of the folder that is there. An SVD3DError naming the problem otherwise."""
    path = Path(folder) / CURATION
    try:
        manifest = json.loads(path.read_text())
        kept = [c for c in manifest["clips"] if c["kept"]]
        lacking = [key for c in kept for key in ("file", "source", "fps", "frames", "start_frame") if key not in c]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SVD3DError(f"{path} is not a valid curation manifest ({type(err).__name__}: {err}); run svd3d curate "
                         "again") from None  # fmt: skip
    if lacking:
        raise SVD3DError(f"{path} is not a valid curation manifest (a kept clip has no {lacking[0]!r}); run svd3d "
                         "curate again")  # fmt: skip
    for clip in kept:
        name = clip["file"]
        if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
            raise SVD3DError(f"{path} names a clip file {name!r} outside its folder; run svd3d curate again")
        if not (path.parent / name).is_file():
            raise SVD3DError(f"kept clip {name} listed in {path} is missing; run svd3d curate again")
    return manifest


def load_video_folder(folder: str | Path, *, size: int = 64, frames: int = 14, stride: int | None = None) -> ClipData:
    """Every clip in `folder` (`find_clips`) as windows of `frames` consecutive frames, `stride` frames apart
    (default `frames`: windows do not overlap), each centre-cropped square and area-resized to `size`.

    fps comes from the file (GIF: its frame duration; frame folders: DEFAULT_FOLDER_FPS, 7). A window is named
    "<file or folder name>#<first frame>"; its motion bucket is measured with `motion_bucket`. A clip shorter than
    `frames` is an error naming it.

    A folder `svd3d curate` wrote (it holds curation.json) gives its kept clips only, at the frame rates of their
    source videos; a window is named "<source video>#<its first frame in the source>", so all the clips of one
    source video are one object (`ClipData.split` keeps it whole), and a kept clip shorter than `frames` is
    skipped and listed in the dataset's source["skipped"].
    """
    folder = Path(folder)
    size = whole_number("size", size, 8, unit="pixels")
    frames = whole_number("frames", frames, 2, unit="frames per window")
    stride = whole_number("stride", frames if stride is None else stride, 1, unit="frames between windows")
    curation = read_curation(folder) if (folder / CURATION).is_file() else None
    if curation is None:
        clips = [(path, None) for path in find_clips(folder)]
    else:
        clips = [(folder / c["file"], c) for c in curation["clips"] if c["kept"]]
        if not clips:
            raise SVD3DError(f"svd3d curate kept no clips in {folder} (see {CURATION}); curate again with looser "
                             "thresholds")  # fmt: skip
    windows, rates, names, record, skipped = [], [], [], [], []
    for path, kept in clips:
        clip, fps = read_clip(path, size)
        if kept is not None:
            if len(clip) != kept["frames"]:
                raise SVD3DError(f"clip {path} has {len(clip)} frames but {CURATION} says {kept['frames']}; run "
                                 "svd3d curate again")  # fmt: skip
            if len(clip) < frames:
                skipped.append({"path": str(path), "error": f"{len(clip)} frames, fewer than frames={frames}"})
                continue
        elif len(clip) < frames:
            raise SVD3DError(
                f"clip {path} has {len(clip)} frames, fewer than frames={frames}; remove it or ask for fewer frames"
            )
        name, first, fps = (path.name, 0, fps) if kept is None else (kept["source"], kept["start_frame"], kept["fps"])
        starts = range(0, len(clip) - frames + 1, stride)
        windows += [clip[a : a + frames] for a in starts]
        rates += [fps] * len(starts)
        names += [f"{name.replace('#', '_')}#{first + a:04d}" for a in starts]
        record.append({"clip": path.name, "frames": len(clip), "fps": round(fps, 4), "windows": len(starts)})
        if kept is not None:
            record[-1] |= {"source": kept["source"], "span": [kept["start_frame"], kept["start_frame"] + len(clip)]}
    if not windows:
        raise SVD3DError(f"no kept clip of {folder} has frames={frames} frames; ask for fewer frames")
    log.info("read %d clips from %s: %d windows of %d frames", len(record), folder, len(windows), frames)
    data = np.stack(windows)
    source = {
        "generator": "svd3d.training.videos.load_video_folder",
        "settings": {"size": size, "frames": frames, "stride": stride, "motion_scale": MOTION_SCALE},
        "folder": str(folder),
        "clips": record,
    }
    if curation is not None:
        source["curation"] = {"manifest": CURATION, "settings": curation.get("settings"),
                              "summary": curation.get("summary")}  # fmt: skip
        source["skipped"] = skipped
    motion = np.array([motion_bucket(w) for w in data], np.float32)
    return ClipData(frames=data, fps=np.array(rates, np.float32), motion=motion, names=names, source=source)
