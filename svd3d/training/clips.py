"""Synthetic video clips for training image-to-video models: seeded 2D scenes drawn analytically with numpy, every
frame at once, in the format of svd3d.training.data (windows of real videos: svd3d.training.videos).

- background: a two-colour gradient (muted colours) with a soft pattern (stripes, checker, blobs, or none),
  evaluated at canvas coordinates, so the canvas is unbounded; the camera is a square window that pans over it
  and zooms in or out (the "crop window over a larger canvas", without a canvas image to crop);
- 1-3 shapes (discs, boxes, triangles, stars; stretched, flat / two-tone / striped in strong colours) that move
  along smooth bounded paths (a sinusoid per axis), turn, and pulse in size; some follow the camera, as a subject
  in a tracking shot does, the others stay put on the canvas and drift out with the pan;
- speed: every motion is defined per second and multiplied by the scene's `speed`; the clip's fps is drawn from
  FPS_CHOICES and the frames sample the scene at that rate, so a higher fps means smaller steps between frames
  for the same motion, as in real footage.

Edges are antialiased analytically (coverage from a signed distance in pixels). Each clip's motion bucket is
measured from its frames (svd3d.training.data.motion_bucket), as for real clips.

`camera` restricts the camera's motion to one kind (the data of camera-motion LoRAs, as the SVD paper trains
them): "static" holds it still (the shapes still move), "pan-left" / "pan-right" / "pan-up" / "pan-down" move it
that way at 0.15-0.3 of the view per second (so the picture slides the other way: a pan left makes the content
move right), "zoom-in" / "zoom-out" scale the view by exp(+-0.3..0.6) per second about its centre. The scene
itself (background, shapes, speed, fps) is the one the same seed draws with "any" (every camera, the default): the
camera's own draws come after all others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from tqdm import tqdm

from svd3d.errors import SVD3DError
from svd3d.training.data import MOTION_SCALE, ClipData, motion_bucket, whole_number
from svd3d.training.procedural import PALETTE

FPS_CHOICES = (6, 8, 10, 12)
SHAPES = ("disc", "box", "triangle", "star")
FILLS = ("flat", "two_tone", "stripe")
BACKGROUND_PATTERNS = ("plain", "stripes", "checker", "blobs")
CAMERA_MOTIONS = ("any", "static", "pan-left", "pan-right", "pan-up", "pan-down", "zoom-in", "zoom-out")
# the camera's direction of travel for each pan, in canvas pixels (x right, y down)
PAN_DIRECTIONS = {"pan-left": (-1.0, 0.0), "pan-right": (1.0, 0.0), "pan-up": (0.0, -1.0), "pan-down": (0.0, 1.0)}


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


def camera_motion(rng: np.random.Generator, camera: str, size: float) -> tuple[tuple[float, float], float]:
    """(pan velocity px / s, zoom ln-factor / s) of one camera motion kind (not "any") for a `size` px view."""
    if camera not in CAMERA_MOTIONS or camera == "any":
        raise ValueError(f"unknown camera motion {camera!r}; one of {', '.join(CAMERA_MOTIONS[1:])}")
    if camera in PAN_DIRECTIONS:
        dx, dy = PAN_DIRECTIONS[camera]
        rate = float(rng.uniform(0.15, 0.3)) * size
        return (dx * rate, dy * rate), 0.0
    if camera.startswith("zoom"):
        rate = float(rng.uniform(0.3, 0.6))
        return (0.0, 0.0), rate if camera == "zoom-in" else -rate
    return (0.0, 0.0), 0.0  # static


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


def synthetic_clips(count: int, *, size: int = 64, frames: int = 14, seed: int = 0, camera: str = "any") -> ClipData:
    """`count` seeded synthetic clips (module docstring). Clip i draws its scene and fps from a generator seeded by
    (seed, i), named "synth-000042"; `camera` (CAMERA_MOTIONS) restricts the camera's motion to one kind."""
    if camera not in CAMERA_MOTIONS:
        raise SVD3DError(f"unknown camera motion {camera!r}; choose one of {', '.join(CAMERA_MOTIONS)}")
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
        if camera != "any":  # drawn after everything else: the same seed gives the same scene and fps under any camera
            pan, zoom = camera_motion(rng, camera, size)
            scene = replace(scene, pan=pan, zoom=zoom)
        out[i] = render_scene(scene, frames, fps[i])
        motion[i] = motion_bucket(out[i])
    source = {
        "generator": "svd3d.training.clips.synthetic_clips",
        "settings": {
            "size": size,
            "frames": frames,
            "fps_choices": list(FPS_CHOICES),
            "motion_scale": MOTION_SCALE,
            **({"camera": camera} if camera != "any" else {}),
        },  # fmt: skip
        "seed": int(seed),
        "count": int(count),
    }
    return ClipData(frames=out, fps=fps, motion=motion, names=[f"synth-{i:06d}" for i in range(count)], source=source)
