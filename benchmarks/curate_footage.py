"""Synthetic footage with known cuts and known motion, for `svd3d curate`: shots of the repository's example pictures
and of procedural textures, each with one kind of motion, joined by hard cuts or fades through black, written as
H.264 MP4s.

    python benchmarks/curate_footage.py -o demo/videos          # the README's demo folder (3 videos, ~30 s)

Each video comes with the truth (a JSON beside the folder, or `Footage.truth`): every shot's span, kind and speed,
and where each cut or fade is. Speeds are in pixels per frame at svd3d curate's analysis size (frames scaled to a
128-pixel shorter side), the unit of its --min-motion / --max-motion. benchmarks/curate_bench.py measures the
cut detector and the motion scores on such footage.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PICTURES = ("balloon.png", "shapes_a.png", "shapes_b.png", "toy_a.png", "toy_b.png", "toy_c.png")
HEIGHT, WIDTH = 180, 320  # 16:9 frames
SCALE = HEIGHT / 128  # frame pixels per analysis pixel
KINDS = ("pan", "zoom", "static", "shake", "noise", "flicker")


@dataclass(frozen=True)
class Shot:
    kind: str  # one of KINDS
    frames: int
    picture: str  # an example picture's name, or "texture:<seed>"
    speed: float = 0.0  # pan: px/frame at the analysis size; zoom: scale change per frame (1.01 = 1 %)
    angle: float = 0.0  # pan direction, degrees (0: the view moves right, the content left)
    fade_in: int = 0  # frames fading up from black at the start of the shot (a fade: the previous shot fades out)


@dataclass
class Footage:
    frames: np.ndarray  # (T, HEIGHT, WIDTH, 3) uint8
    truth: dict = field(default_factory=dict)  # shots (spans, kind, speed), cuts, fades


def picture(name: str, size: int = 2 * HEIGHT) -> np.ndarray:
    """An example picture (RGBA ones composited on a soft two-colour background) or a procedural texture, as a
    (size, size * 16 / 9, 3) uint8 canvas the shots move over."""
    from PIL import Image

    width = size * 16 // 9
    if name.startswith("texture:"):
        rng = np.random.default_rng(int(name.split(":")[1]))
        palette = rng.integers(0, 256, (4, 3)).astype(np.float32)
        coarse = rng.random((size // 24 + 2, width // 24 + 2)).astype(np.float32)
        values = np.asarray(Image.fromarray(coarse).resize((width, size), Image.Resampling.BICUBIC))
        x = np.clip(values, 0, 0.999) * (len(palette) - 1)
        i, f = x.astype(int), (x - x.astype(int))[..., None]
        return (palette[i] * (1 - f) + palette[np.minimum(i + 1, len(palette) - 1)] * f).astype(np.uint8)
    img = Image.open(REPO / "assets" / "examples" / name)
    if img.mode == "RGBA":
        rng = np.random.default_rng(sum(map(ord, name)))
        top, bottom = rng.integers(60, 200, (2, 3))
        ramp = np.linspace(0, 1, img.height)[:, None, None]
        back = Image.fromarray((top * (1 - ramp) + bottom * ramp).repeat(img.width, 1).astype(np.uint8))
        img = Image.alpha_composite(back.convert("RGBA"), img)
    img = img.convert("RGB")
    scale = max(width / img.width, size / img.height)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
    left, top = (img.width - width) // 2, (img.height - size) // 2
    return np.asarray(img.crop((left, top, left + width, top + size)))


def render_shot(shot: Shot, seed: int) -> np.ndarray:
    """(shot.frames, HEIGHT, WIDTH, 3) uint8: a window on the shot's picture moving as its kind says, plus a little
    sensor noise (grey-level sigma 1.5)."""
    import cv2

    rng = np.random.default_rng(seed)
    canvas = picture(shot.picture)
    ch, cw = canvas.shape[:2]
    zoom0 = rng.uniform(0.75, 1.0)  # canvas pixels per frame pixel at the start (the canvas is twice the frame)
    x0, y0 = cw / 2 + rng.uniform(-0.15, 0.15) * cw, ch / 2 + rng.uniform(-0.15, 0.15) * ch  # each shot's framing
    out = np.empty((shot.frames, HEIGHT, WIDTH, 3), np.uint8)
    direction = np.radians(shot.angle)
    for i in range(shot.frames):
        cx, cy, zoom = x0, y0, zoom0
        if shot.kind == "pan":
            travel = (i - shot.frames / 2) * shot.speed * SCALE * zoom0  # canvas pixels
            cx, cy = cx + travel * np.cos(direction), cy + travel * np.sin(direction)
        elif shot.kind == "zoom":
            zoom = zoom0 / shot.speed**i
        elif shot.kind == "shake":
            jump = rng.uniform(-1, 1, 2) * shot.speed * SCALE * zoom0  # a random jump of up to `speed` each way
            cx, cy = cx + jump[0], cy + jump[1]
        m = np.float32([[zoom, 0, cx - zoom * WIDTH / 2], [0, zoom, cy - zoom * HEIGHT / 2]])
        frame = cv2.warpAffine(canvas, m, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT)  # fmt: skip
        if shot.kind == "noise":
            frame = rng.integers(0, 256, frame.shape, dtype=np.uint8)
        elif shot.kind == "flicker":
            frame = np.clip(frame * (0.55 if i % 2 else 1.25), 0, 255).astype(np.uint8)
        out[i] = np.clip(frame + rng.normal(0, 1.5, frame.shape), 0, 255).astype(np.uint8)
    return out


def render(shots: list[Shot], seed: int = 0) -> Footage:
    """The shots one after another; a shot with fade_in = k fades the previous one out over its last k frames and
    itself in over its first k, through a black frame each side. The truth: spans, cuts (hard), fades."""
    clips = [render_shot(shot, seed * 1000 + i) for i, shot in enumerate(shots)]
    cuts, fades, spans, start = [], [], [], 0
    for i, (shot, clip) in enumerate(zip(shots, clips, strict=True)):
        if i:
            (fades if shot.fade_in else cuts).append(start)
        if shot.fade_in:
            k = shot.fade_in
            ramp = np.linspace(0, 1, k)[:, None, None, None]  # 0 (black) .. 1
            clip[:k] = (clip[:k] * ramp).astype(np.uint8)
            clips[i - 1][-k:] = (clips[i - 1][-k:] * ramp[::-1]).astype(np.uint8)
        spans.append({"start": start, "end": start + shot.frames, "kind": shot.kind, "speed": shot.speed,
                      "picture": shot.picture, "fade_in": shot.fade_in})  # fmt: skip
        start += shot.frames
    return Footage(np.concatenate(clips), {"frames": start, "cuts": cuts, "fades": fades, "shots": spans})


def demo_videos() -> dict[str, list[Shot]]:
    """The README's demo: three videos of pictures and textures, 12 fps, each shot's kind chosen to exercise one
    curation rule."""
    return {
        "holiday.mp4": [
            Shot("pan", 40, "balloon.png", speed=1.5, angle=0),
            Shot("static", 30, "toy_a.png"),
            Shot("zoom", 36, "shapes_b.png", speed=1.015),
            Shot("pan", 30, "texture:3", speed=2.5, angle=200, fade_in=5),
        ],
        "street.mp4": [
            Shot("shake", 30, "shapes_a.png", speed=6),
            Shot("pan", 36, "toy_b.png", speed=0.8, angle=90),
            Shot("noise", 20, "texture:0"),
            Shot("pan", 8, "toy_c.png", speed=2),
            Shot("pan", 30, "texture:5", speed=16, angle=30),
        ],
        "studio.mp4": [
            Shot("flicker", 24, "toy_c.png"),
            Shot("pan", 40, "texture:8", speed=4, angle=330),
            Shot("static", 28, "balloon.png", fade_in=4),
        ],
    }


def write_demo(folder: Path, fps: float = 12.0) -> dict:
    """Write the demo videos into `folder` and return their truth, by file name."""
    import sys

    sys.path.insert(0, str(REPO))
    from svd3d.media import write_video

    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i, (name, shots) in enumerate(demo_videos().items()):
        footage = render(shots, seed=i)
        write_video(footage.frames, folder / name, fps=fps)
        truth[name] = footage.truth
    return truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder for the demo videos")
    args = parser.parse_args()
    truth = write_demo(args.output)
    (args.output.parent / f"{args.output.name}-truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    for name, t in truth.items():
        print(f"{args.output / name}: {t['frames']} frames, cuts at {t['cuts']}, fades at {t['fades']}")


if __name__ == "__main__":
    main()
