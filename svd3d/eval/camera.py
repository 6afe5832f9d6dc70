"""Does a camera-motion LoRA do what it says? Animate held-out images with a video model, without and with each
adapter, and measure the camera motion of every clip from its pixels (svd3d.eval.flow).

Protocol, stated once:

- Inputs: frame 0 of `images` synthetic clips drawn with a seed no training run uses (svd3d.training.clips, camera
  "static": the picture alone matters), or the first frames of a clip dataset's clips (`data`).
- Generation: each input is animated by the base model and by the model with each adapter alone (at its scale),
  with the model's default frames, fps, motion bucket, steps and guidance; input i uses seed + i in every variant,
  so the variants differ only by the adapter.
- Motion: per clip, the affine field that best fits the dense optical flow between consecutive frames (OpenCV
  Farnebäck), averaged over the frame pairs: the picture centre's flow x / y (px per frame; x > 0: the picture moves
  right, as in a pan left) and the divergence (relative growth per frame, x 100 in the table; > 0: zooming in).
  Reported: means over the clips, the mean speed |(x, y)|, and for adapters that record their camera motion:
  - `moves as named`: the share of clips whose motion is the named one: pans, the flow along the pan's direction
    above MOVING px / frame; zooms, the divergence beyond ZOOMING in the zoom's sense; static, speed below MOVING
    and |divergence| below ZOOMING;
  - `vs base`: paired with the base model's clip of the same input and seed, how much more of the named motion the
    adapter's clip has (`named_motion`, px / frame: the flow along a pan, a zoom's divergence times half the frame
    width, i.e. the flow it makes at the frame's edge, or for static minus both), as a mean and as the number of
    inputs where it is more.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from svd3d import defaults, media, outputs
from svd3d.devices import resolve_device, resolve_dtype
from svd3d.errors import SVD3DError
from svd3d.eval.flow import GlobalMotion, global_motion
from svd3d.models import SVDModel, load_model
from svd3d.models.lora import Adapter, check_adapters_fit, read_adapters
from svd3d.models.registry import default_model
from svd3d.pipelines.common import check_positive
from svd3d.pipelines.video import generate_video
from svd3d.training.clips import synthetic_clips
from svd3d.training.data import ClipData

log = logging.getLogger(__name__)

PROTOCOL = __doc__
CAMERA_SEED = 777  # the held-out inputs' seed: no recipe's clips use it
MOVING = 0.25  # px / frame: a pan's flow must exceed it; a static camera's speed stay below it
ZOOMING = 0.01  # per frame: a zoom's divergence must exceed it (about 0.5% per frame); a static one's stay below
# the picture's motion each camera motion makes: (flow x, flow y) direction for pans, divergence sign for zooms
PAN_FLOW = {"pan-left": (1, 0), "pan-right": (-1, 0), "pan-up": (0, 1), "pan-down": (0, -1)}
ZOOM_SIGN = {"zoom-in": 1, "zoom-out": -1}


def moves_as(motion: GlobalMotion, camera: str) -> bool:
    """Whether a clip's measured motion is the camera motion `camera` (module docstring's thresholds)."""
    if camera in PAN_FLOW:
        dx, dy = PAN_FLOW[camera]
        return motion.flow_x * dx + motion.flow_y * dy > MOVING
    if camera in ZOOM_SIGN:
        return motion.divergence * ZOOM_SIGN[camera] > ZOOMING
    if camera == "static":
        return motion.speed < MOVING and abs(motion.divergence) < ZOOMING
    raise ValueError(f"no test for camera motion {camera!r}")


def named_motion(motion: GlobalMotion, camera: str, half_width: float) -> float:
    """How much of the camera motion `camera` a clip has, px / frame (module docstring, `vs base`)."""
    if camera in PAN_FLOW:
        dx, dy = PAN_FLOW[camera]
        return motion.flow_x * dx + motion.flow_y * dy
    if camera in ZOOM_SIGN:
        return motion.divergence * ZOOM_SIGN[camera] * half_width
    if camera == "static":
        return -(motion.speed + abs(motion.divergence) * half_width)
    raise ValueError(f"no measure for camera motion {camera!r}")


@dataclass(frozen=True)
class VariantMotion:
    name: str  # "base", or the adapter as named (with its scale)
    camera: str | None  # the camera motion the adapter records (its training data's), None for the base
    clips: list[GlobalMotion]

    def mean(self, what: str) -> float:
        return float(np.mean([getattr(c, what) for c in self.clips]))

    @property
    def as_named(self) -> float | None:
        if self.camera is None or self.camera == "any":
            return None
        return float(np.mean([moves_as(c, self.camera) for c in self.clips]))


@dataclass(frozen=True)
class CameraEval:
    model: str
    inputs: str
    variants: list[VariantMotion]
    settings: dict
    protocol: str = field(default=PROTOCOL, repr=False)

    def versus_base(self, variant: VariantMotion) -> np.ndarray | None:
        """Per input, the adapter's named motion minus the base model's (px / frame); None without a named one."""
        if variant.camera in (None, "any") or self.variants[0].camera is not None:
            return None
        half = self.settings["size"] / 2
        mine = [named_motion(c, variant.camera, half) for c in variant.clips]
        base = [named_motion(c, variant.camera, half) for c in self.variants[0].clips]
        return np.array(mine) - np.array(base)

    def table(self) -> str:
        s = self.settings
        lines = [
            f"camera motion of {s['images']} clip(s) x {s['frames']} frames at {s['size']}px, {self.model} on "
            f"{self.inputs}",
            "",
            "| variant | flow x (px/frame) | flow y (px/frame) | divergence (%/frame) | speed (px/frame) | "
            "moves as named | named motion vs base (px/frame) |",
            "|---|---|---|---|---|---|---|",
        ]
        for v in self.variants:
            named = "" if v.as_named is None else f"{v.as_named:.0%} ({v.camera})"
            delta = self.versus_base(v)
            versus = "" if delta is None else f"{delta.mean():+.3f}, more in {int((delta > 0).sum())}/{len(delta)}"
            lines.append(f"| {v.name} | {v.mean('flow_x'):+.3f} | {v.mean('flow_y'):+.3f} | "
                         f"{100 * v.mean('divergence'):+.2f} | {v.mean('speed'):.3f} | {named} | {versus} |")  # fmt: skip
        lines += ["", "flow x > 0: the picture moves right (the camera pans left); divergence > 0: zooming in"]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "inputs": self.inputs,
            "settings": self.settings,
            "variants": [
                {"name": v.name, "camera": v.camera, "as_named": v.as_named,
                 "versus_base": None if self.versus_base(v) is None else self.versus_base(v).tolist(),
                 "mean": {k: v.mean(k) for k in ("flow_x", "flow_y", "divergence", "speed", "residual")},
                 "clips": [asdict(c) for c in v.clips]}
                for v in self.variants
            ],
            "protocol": self.protocol,
        }  # fmt: skip

    def write_json(self, path: str | Path) -> None:
        """Write to_dict() to path, atomically; an existing file there must be svd3d's own (svd3d.outputs)."""
        outputs.check_file_replaceable(Path(path))
        media.write_json(Path(path), {"written_by": "svd3d eval camera", **self.to_dict()})


def held_out_images(count: int, size: int, seed: int = CAMERA_SEED) -> list[np.ndarray]:
    """`count` synthetic pictures (frame 0 of static-camera clips) at `size` px, from a seed training never uses."""
    data = synthetic_clips(count, size=size, frames=2, seed=seed, camera="static")
    return [np.asarray(data.frames[i, 0]) for i in range(count)]


def evaluate_camera(
    model,
    loras=(),
    *,
    images: int = 16,
    data: str | Path | None = None,
    image_seed: int = CAMERA_SEED,
    steps: int | None = None,
    seed: int = defaults.EVAL_SEED,
    dtype: str = defaults.DTYPE,
    device: str = defaults.DEVICE,
    progress: bool = True,
) -> CameraEval:
    """Measure the camera motion of a video model's clips (name / path / hub id / SVDModel; the bundled default
    when None) without and with each of `loras` (as generate_video takes them), on `images` held-out inputs:
    synthetic ones from `image_seed`, or the first frames of the clip dataset `data` (module docstring)."""
    # 1. check inputs, read the adapters
    check_positive("images", images, "--images")
    check_positive("steps", steps, "--steps")
    adapters = read_adapters(loras)
    torch_dtype = resolve_dtype(dtype, resolve_device(device))

    # 2. the model, loaded once; every adapter must fit it
    if not isinstance(model, SVDModel):
        model = load_model(model or default_model("video"), dtype=torch_dtype)
    if model.info.kind != "video":
        raise SVD3DError(f"model {model.source} is a {model.info.kind} model; svd3d eval camera needs a video model")
    check_adapters_fit(model.unet, adapters, model.source)
    size = model.info.width

    # 3. the inputs
    if data is not None:
        clips = ClipData.load(data)
        if images > len(clips):
            raise SVD3DError(f"--images {images} but clip dataset {data} holds {len(clips)} clip(s)")
        inputs = [np.asarray(clips.frames[i, 0]) for i in range(images)]
        where = str(data)
    else:
        inputs = held_out_images(images, size, image_seed)
        where = f"{images} held-out synthetic pictures (seed {image_seed})"

    # 4. every variant on every input, the same seeds
    variants: list[tuple[str, Adapter | None]] = [("base", None)]
    variants += [(f"{a.source}" + (f" x{a.scale:g}" if a.scale != 1 else ""), a) for a in adapters]
    results = []
    for name, adapter in variants:
        motions = []
        for i, picture in enumerate(tqdm(inputs, desc=name, unit="clip", disable=not progress)):
            clip = generate_video(Image.fromarray(picture), model=model, steps=steps, seed=seed + i, dtype=dtype,
                                  device=device, loras=[] if adapter is None else [(adapter.path, adapter.scale)],
                                  progress=False)  # fmt: skip
            motions.append(global_motion(clip.frames_uint8()))
        camera = None if adapter is None else adapter.record.get("camera")
        results.append(VariantMotion(name, camera, motions))

    info = model.info
    settings = {
        "images": images,
        "frames": info.num_frames,
        "size": size,
        "fps": info.fps,
        "motion_bucket": info.motion_bucket_id,
        "steps": steps or info.num_steps,
        "seed": seed,
        "image_seed": image_seed if data is None else None,
        "loras": [a.to_record() for a in adapters],
        "dtype": str(torch_dtype).removeprefix("torch."),
        "device": str(resolve_device(device)),
    }
    return CameraEval(model.source, where, results, settings)
