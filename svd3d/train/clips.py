"""Video clips for training image-to-video models: seeded synthetic 2D scenes, and windows of real clips.

Synthetic scenes (`synthetic_clips`) are drawn analytically with numpy, every frame at once:

- background: a two-colour gradient (muted colours) with a soft pattern (stripes, checker, blobs, or none),
  evaluated at canvas coordinates, so the canvas is unbounded; the camera is a square window that pans over it
  and zooms in or out (the "crop window over a larger canvas", without a canvas image to crop);
- 1-3 shapes (discs, boxes, triangles, stars; stretched, flat / two-tone / striped in strong colours) that move
  along smooth bounded paths (a sinusoid per axis), turn, and pulse in size; some follow the camera, as a subject
  in a tracking shot does, the others stay put on the canvas and drift out with the pan;
- speed: every motion is defined per second and multiplied by the scene's `speed`; the clip's fps is drawn from
  FPS_CHOICES and the frames sample the scene at that rate, so a higher fps means smaller steps between frames
  for the same motion, as in real footage.

Edges are antialiased analytically (coverage from a signed distance in pixels).

Motion bucket (SVD's motion conditioning, 0..255): SVD derives it from optical flow; svd3d uses a flow-free proxy
computed from the frames themselves, so synthetic and real clips get it the same way (`motion_bucket`):
d = the mean absolute difference between consecutive frames, over pixels and RGB channels, in 0..255 intensity
units, and bucket = min(255, round(MOTION_SCALE * log2(1 + d))): 0 for a still clip, 64 for d = 1, 128 for d = 3,
192 for d = 7, 255 from d = 15 on. The logarithm spreads slow and fast clips over the range (synthetic clips:
median about 110, 10th / 90th percentile about 45 / 195) where a linear scale crowds most clips near 0 or clips the
fast ones. It is measured at the dataset's resolution (64 px by default), so compare buckets at one resolution.

Real clips (`load_video_folder`): video files (MP4, WebM, MOV, MKV, AVI via imageio-ffmpeg; GIF / animated WebP via
Pillow) and subfolders of numbered PNG / JPEG frames, centre-cropped square, area-resized, cut into windows.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from svd3d.errors import SVD3DError
from svd3d.train.data import ClipData, whole_number

log = logging.getLogger(__name__)

FPS_CHOICES = (6, 8, 10, 12)
MOTION_SCALE = 64.0  # motion buckets per doubling of (1 + mean absolute frame difference); see motion_bucket
DEFAULT_FOLDER_FPS = 7.0  # fps of a folder of frames (they carry no rate); SVD's default fps conditioning
FFMPEG_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v")
ANIMATION_SUFFIXES = (".gif", ".webp")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
SHAPES = ("disc", "box", "triangle", "star")
FILLS = ("flat", "two_tone", "stripe")
BACKGROUND_PATTERNS = ("plain", "stripes", "checker", "blobs")


def motion_bucket(frames: np.ndarray) -> float:
    """SVD motion bucket proxy of one clip: (T, H, W, 3) uint8 -> a whole number in 0..255 (module docstring)."""
    if frames.ndim != 4 or len(frames) < 2:
        raise SVD3DError(f"a motion bucket needs a clip of (T >= 2, H, W, 3) frames, got shape {frames.shape}")
    diff = float(np.abs(np.diff(frames.astype(np.int16), axis=0)).mean())
    return float(min(255.0, round(MOTION_SCALE * np.log2(1.0 + diff))))


# ------------------------------------------------------------------------------------------------ scenes


@dataclass(frozen=True)
class Shape:
    """A shape on the canvas. Positions in pixels relative to the view centre at mid-clip, times in seconds."""

    kind: str  # one of SHAPES
    fill: str  # one of FILLS: flat, two-tone (halves) or a stripe across it, in its own frame
    colour: tuple[float, float, float]  # sRGB 0..1
    accent: tuple[float, float, float]  # second colour of two-tone / stripe fills
    centre: tuple[float, float]  # px, mid-clip
    amplitude: tuple[float, float]  # px, of the path's sinusoid per axis
    omega: tuple[float, float]  # rad / s, per axis
    phase: tuple[float, float]  # rad
    radius: float  # px
    aspect: float  # height / width of the shape's own frame
    angle: float  # rad at mid-clip
    spin: float  # rad / s
    pulse: float  # relative size change amplitude
    pulse_omega: float  # rad / s
    tracked: bool  # follows the camera's pan (a tracking shot's subject)


@dataclass(frozen=True)
class Background:
    """A gradient between two colours with a soft pattern, at canvas coordinates (px)."""

    colours: tuple[tuple[float, float, float], tuple[float, float, float]]
    direction: float  # rad, of the gradient
    pattern: str  # one of BACKGROUND_PATTERNS
    period: float  # px
    pattern_angle: float  # rad
    contrast: float  # 0..1, how much the pattern darkens
    blobs: tuple[tuple[float, float, float], ...] = ()  # (x, y, sigma) px, pattern "blobs"


@dataclass(frozen=True)
class Scene:
    """Everything a synthetic clip shows; `render_scene` samples it at any fps."""

    size: int
    background: Background
    shapes: tuple[Shape, ...]
    pan: tuple[float, float]  # camera velocity, px / s
    zoom: float  # ln of the zoom factor per second (> 0 zooms in)
    speed: float = 1.0  # multiplies every motion: paths, spins, pulses, pan and zoom


def _colour(rgb) -> tuple[float, float, float]:
    return tuple(float(c) for c in np.clip(np.asarray(rgb, float) / 255.0, 0, 1))


def random_scene(rng: np.random.Generator, size: int) -> Scene:
    """A seeded scene for a `size` px square view (module docstring)."""
    from svd3d.train.procedural import PALETTE

    s = float(size)
    colours = PALETTE[rng.permutation(len(PALETTE))].astype(float)
    grey = rng.uniform(170, 235)
    muted = 0.35 * colours[-2:] + 0.65 * grey  # background: two muted colours not used by the shapes
    pattern = str(rng.choice(BACKGROUND_PATTERNS))
    centres, sigmas = rng.uniform(-s, s, (6, 2)), rng.uniform(0.1, 0.3, 6) * s
    blobs = tuple((float(x), float(y), float(g)) for (x, y), g in zip(centres, sigmas, strict=True))
    background = Background(
        colours=(_colour(muted[0]), _colour(muted[1])),
        direction=float(rng.uniform(0, 2 * np.pi)),
        pattern=pattern,
        period=float(rng.uniform(0.15, 0.4) * s),
        pattern_angle=float(rng.uniform(0, np.pi)),
        contrast=float(rng.uniform(0.15, 0.35)),
        blobs=blobs if pattern == "blobs" else (),
    )
    shapes = []
    for k in range(int(rng.integers(1, 4))):
        shapes.append(
            Shape(
                kind=str(rng.choice(SHAPES)),
                fill=str(rng.choice(FILLS)),
                colour=_colour(colours[2 * k]),
                accent=_colour(colours[2 * k + 1]),
                centre=tuple(float(c) for c in rng.uniform(-0.25, 0.25, 2) * s),
                amplitude=tuple(float(a) for a in rng.uniform(0.0, 0.25, 2) * s),
                omega=tuple(float(w) for w in rng.uniform(0.5, 2.5, 2)),
                phase=tuple(float(p) for p in rng.uniform(0, 2 * np.pi, 2)),
                radius=float(rng.uniform(0.12, 0.24) * s),
                aspect=float(rng.uniform(0.6, 1.0)),
                angle=float(rng.uniform(0, 2 * np.pi)),
                spin=float(rng.uniform(-2.0, 2.0)),
                pulse=float(rng.uniform(0.0, 0.25)),
                pulse_omega=float(rng.uniform(0.5, 2.5)),
                tracked=bool(rng.random() < 0.5),
            )
        )
    still_camera = rng.random() < 0.3
    pan = (0.0, 0.0) if still_camera else tuple(float(p) for p in rng.uniform(-0.12, 0.12, 2) * s)
    zoom = 0.0 if still_camera or rng.random() < 0.5 else float(rng.uniform(-0.2, 0.2))
    speed = float(np.exp(rng.uniform(np.log(0.2), np.log(2.0))))
    return Scene(size=int(size), background=background, shapes=tuple(shapes), pan=pan, zoom=zoom, speed=speed)


def _soft_step(x: np.ndarray) -> np.ndarray:
    """Coverage of a signed distance in pixels (negative inside): a 1 px antialiased edge."""
    return np.clip(0.5 - x, 0.0, 1.0)


def _shape_distance(kind: str, qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
    """Approximate signed distance, in units of the shape's radius, at its own frame's coordinates."""
    if kind == "disc":
        return np.sqrt(qx * qx + qy * qy) - 1.0
    if kind == "box":
        return np.maximum(np.abs(qx), np.abs(qy)) - 0.8
    if kind == "triangle":  # equilateral, inradius 0.55, pointing up in its own frame
        d = -qy - 0.55
        for a in (np.pi / 6, 5 * np.pi / 6):
            d = np.maximum(d, qx * np.cos(a) + qy * np.sin(a) - 0.55)
        return d
    if kind == "star":  # five points, outer radius 1, inner 0.45
        rho, phi = np.sqrt(qx * qx + qy * qy), np.arctan2(qy, qx)
        wave = np.abs(((phi * 5 / (2 * np.pi)) % 1.0) - 0.5) * 2  # 1 at a point, 0 between two
        return (rho - (0.45 + 0.55 * wave)) * 0.8
    raise ValueError(f"unknown shape {kind!r}")


def render_scene(scene: Scene, frames: int, fps: float) -> np.ndarray:
    """Sample a scene at `fps`: `frames` frames centred on mid-clip -> (T, S, S, 3) uint8."""
    s = scene.size
    tau = ((np.arange(frames) - (frames - 1) / 2) / fps * scene.speed).astype(np.float32)  # (T,) scene seconds
    tau3 = tau[:, None, None]
    pix = np.arange(s, dtype=np.float32) - s / 2 + 0.5  # pixel centres relative to the view centre
    scale = np.exp(-scene.zoom * tau3)  # (T, 1, 1) canvas px per screen px
    cam_x, cam_y = scene.pan[0] * tau3, scene.pan[1] * tau3
    x = cam_x + pix[None, None, :] * scale  # (T, 1, S) canvas coordinates (y down)
    y = cam_y + pix[None, :, None] * scale  # (T, S, 1)
    # 1. background
    bg = scene.background
    along = x * math.cos(bg.direction) + y * math.sin(bg.direction)  # (T, S, S)
    mix = 0.5 + 0.5 * np.tanh(along / s)
    c0, c1 = np.asarray(bg.colours[0], np.float32), np.asarray(bg.colours[1], np.float32)
    image = c0 + mix[..., None] * (c1 - c0)  # (T, S, S, 3)
    if bg.pattern != "plain":
        u = (x * math.cos(bg.pattern_angle) + y * math.sin(bg.pattern_angle)) * (2 * np.pi / bg.period)
        if bg.pattern == "stripes":
            dark = 0.5 + 0.5 * np.tanh(3 * np.sin(u))
        elif bg.pattern == "checker":
            v = (y * math.cos(bg.pattern_angle) - x * math.sin(bg.pattern_angle)) * (2 * np.pi / bg.period)
            dark = 0.5 + 0.5 * np.tanh(3 * np.sin(u)) * np.tanh(3 * np.sin(v))
        else:  # blobs
            dark = sum(np.exp(-((x - bx) ** 2 + (y - by) ** 2) / (2 * g * g)) for bx, by, g in bg.blobs)
            dark = np.minimum(dark, 1.0)
        image *= (1.0 - bg.contrast * dark)[..., None]
    # 2. shapes, back to front
    for shape in scene.shapes:
        cx = shape.centre[0] + shape.amplitude[0] * np.sin(shape.omega[0] * tau3 + shape.phase[0])
        cy = shape.centre[1] + shape.amplitude[1] * np.sin(shape.omega[1] * tau3 + shape.phase[1])
        if shape.tracked:
            cx, cy = cx + cam_x, cy + cam_y
        radius = shape.radius * (1.0 + shape.pulse * np.sin(shape.pulse_omega * tau3))  # (T, 1, 1)
        angle = shape.angle + shape.spin * tau3
        cos, sin = np.cos(angle), np.sin(angle)
        dx, dy = x - cx, y - cy
        qx = (cos * dx + sin * dy) / radius  # (T, S, S) the shape's own frame, in radii
        qy = (cos * dy - sin * dx) / (radius * shape.aspect)
        px_per_unit = radius / scale  # screen pixels per radius
        cover = _soft_step(_shape_distance(shape.kind, qx, qy) * px_per_unit)
        fill = np.broadcast_to(np.asarray(shape.colour, np.float32), image.shape)
        if shape.fill != "flat":
            edge = qy if shape.fill == "two_tone" else 0.3 - np.abs(qy)
            accent = _soft_step(-edge * px_per_unit)[..., None]
            fill = fill + accent * (np.asarray(shape.accent, np.float32) - np.asarray(shape.colour, np.float32))
        image += cover[..., None] * (fill - image)
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def synthetic_clips(count: int, *, size: int = 64, frames: int = 14, seed: int = 0) -> ClipData:
    """`count` seeded synthetic clips (module docstring). Clip i draws its scene and fps from a generator seeded by
    (seed, i), named "synth-000042"."""
    from tqdm import tqdm

    count = whole_number("count", count, 1, unit="clips")
    size = whole_number("size", size, 8, unit="pixels")
    frames = whole_number("frames", frames, 2, unit="frames per clip")
    out = np.empty((count, frames, size, size, 3), np.uint8)
    fps = np.empty(count, np.float32)
    motion = np.empty(count, np.float32)
    for i in tqdm(range(count), desc="clips", disable=None):
        rng = np.random.default_rng([int(seed), i])
        scene = random_scene(rng, size)
        fps[i] = float(rng.choice(FPS_CHOICES))
        out[i] = render_scene(scene, frames, fps[i])
        motion[i] = motion_bucket(out[i])
    source = {
        "generator": "svd3d.train.clips.synthetic_clips",
        "settings": {"size": size, "frames": frames, "fps_choices": list(FPS_CHOICES), "motion_scale": MOTION_SCALE},
        "seed": int(seed),
        "count": int(count),
    }
    return ClipData(frames=out, fps=fps, motion=motion, names=[f"synth-{i:06d}" for i in range(count)], source=source)


# ------------------------------------------------------------------------------------------------ real clips


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
        "generator": "svd3d.train.clips.load_video_folder",
        "settings": {"size": size, "frames": frames, "stride": stride, "motion_scale": MOTION_SCALE},
        "folder": str(folder),
        "clips": record,
    }
    motion = np.array([motion_bucket(w) for w in data], np.float32)
    return ClipData(frames=data, fps=np.array(rates, np.float32), motion=motion, names=names, source=source)
