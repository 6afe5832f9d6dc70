"""How good are a video model's clips? Animate the first frame of each clip of a clip dataset with the clip's own
fps and motion bucket, and compare the generated clip with the real one, beside two trivial baselines.

Protocol, stated once:

- Generation: frame 0 of each clip is the conditioning image, at the dataset's size; the model makes the clip's T
  frames with fps = the clip's fps (rounded) and motion bucket = the clip's (rounded), the model's default
  steps, noise augmentation and guidance. Clip i uses seed + i.
- Scored frames: 1..T-1 against the real frames: PSNR (dB, whole image in [0, 1]) and SSIM (skimage, RGB), means
  over frames, then over clips. A future is not unique, so these reward a likely, sharp continuation and penalise
  any motion that differs from the real one; read them beside the baselines.
- Baselines: `repeat-input` (a still clip of frame 0: the hard floor for slow clips) and `mean-image` (the
  per-pixel mean of every scored real frame of every evaluated clip: it peeks at the test set).
- Start: PSNR of generated frame 0 against the input (SVD generates frame 0 too; it should be the input).
- Motion control: the motion bucket measured on the generated clip (`svd3d.training.data.motion_bucket`, the measure
  the training clips were labelled with, at the dataset's resolution) against the bucket asked for: mean absolute
  error, and the Pearson correlation over clips (1: the model moves as much as it is told to).
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
from svd3d.eval import plots
from svd3d.eval.metrics import mean_scored_frame
from svd3d.image_metrics import psnr, ssim
from svd3d.models import SVDModel, load_model
from svd3d.models.registry import default_model
from svd3d.pipelines.common import check_positive
from svd3d.pipelines.video import generate_video
from svd3d.training.data import ClipData, motion_bucket

log = logging.getLogger(__name__)

PROTOCOL = __doc__
METHODS = ("model", "repeat-input", "mean-image")


@dataclass(frozen=True)
class ClipEval:
    name: str
    psnr: dict[str, float]  # method -> mean over frames 1..T-1
    ssim: dict[str, float]
    start_psnr: float  # generated frame 0 against the input
    motion_asked: float
    motion_made: float
    frames: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # method -> {"psnr", "ssim"} per frame


@dataclass(frozen=True)
class VideoEval:
    model: str
    data: str
    clips: list[ClipEval]
    settings: dict
    protocol: str = field(default=PROTOCOL, repr=False)

    def mean(self, metric: str, method: str) -> float:
        return float(np.mean([getattr(c, metric)[method] for c in self.clips]))

    @property
    def start_psnr(self) -> float:
        return float(np.mean([c.start_psnr for c in self.clips]))

    @property
    def motion_error(self) -> float:
        return float(np.mean([abs(c.motion_made - c.motion_asked) for c in self.clips]))

    @property
    def motion_correlation(self) -> float | None:
        asked = np.array([c.motion_asked for c in self.clips])
        made = np.array([c.motion_made for c in self.clips])
        if len(asked) < 2 or asked.std() == 0 or made.std() == 0:
            return None
        return float(np.corrcoef(asked, made)[0, 1])

    def table(self) -> str:
        s = self.settings
        corr = self.motion_correlation
        lines = [
            f"clips of {len(self.clips)} clip(s) x {s['frames'] - 1} frame(s) at {s['size']}px (frame 0 excluded), "
            f"{self.model} on {self.data}",
            "",
            "| method | PSNR (dB) ↑ | SSIM ↑ |",
            "|---|---|---|",
            *(f"| {m} | {self.mean('psnr', m):.2f} | {self.mean('ssim', m):.4f} |" for m in METHODS),
            "",
            f"start (generated frame 0 vs input): PSNR {self.start_psnr:.2f} dB",
            f"motion bucket, made vs asked: mean abs error {self.motion_error:.1f}, correlation "
            + ("n/a" if corr is None else f"{corr:.3f}"),
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "data": self.data,
            "settings": self.settings,
            "mean": {m: {"psnr": self.mean("psnr", m), "ssim": self.mean("ssim", m)} for m in METHODS},
            "start_psnr": self.start_psnr,
            "motion_error": self.motion_error,
            "motion_correlation": self.motion_correlation,
            "clips": [asdict(c) for c in self.clips],
            "protocol": self.protocol,
        }

    def write_json(self, path: str | Path) -> None:
        """Write to_dict() to path, atomically; an existing file there must be svd3d's own (svd3d.outputs)."""
        outputs.check_file_replaceable(Path(path))
        media.write_json(Path(path), {"written_by": "svd3d eval video", **self.to_dict()})

    def plot_panels(self) -> list[plots.Panel]:
        """PSNR and SSIM frame by frame (a line per method: the mean over clips; the model's single clips as dots
        behind it), and the motion bucket each clip was made with against the one asked for."""
        t = len(self.clips[0].frames["model"]["psnr"])
        x = np.arange(1, t + 1, dtype=np.float64)
        panels = []
        for metric, label in (("psnr", "PSNR (dB)"), ("ssim", "SSIM")):
            lines, capped = [], False
            for method in METHODS:
                values = np.array([c.frames[method][metric] for c in self.clips], np.float64)  # (N, T-1)
                if metric == "psnr":
                    values, was = plots.capped_psnr(values)
                    capped |= was
                points = (np.tile(x, len(self.clips)), values.ravel()) if method == "model" else None
                lines.append(plots.Line(method, x, values.mean(0), points))
            note = f", inf drawn at {plots.PSNR_CEILING:g}" if capped else ""
            panels.append(plots.LinePanel(f"{label} by frame{note}", "frame", label, lines,
                                          xticks=x.tolist() if t <= 30 else None))  # fmt: skip
        asked = np.array([c.motion_asked for c in self.clips])
        made = np.array([c.motion_made for c in self.clips])
        corr = self.motion_correlation
        title = "motion bucket" + ("" if corr is None else f" (correlation {corr:.2f})")
        panels.append(plots.ScatterPanel(title, "asked", "made (measured on the clip)", asked, made))
        return panels

    def write_plot(self, path: str | Path) -> Path:
        """The plot_panels() as a PNG at `path` (svd3d.eval.plots: checked, written atomically)."""
        s = self.settings
        title = f"{self.model} on {self.data}: {len(self.clips)} clip(s), frames 1..{s['frames'] - 1} at {s['size']}px"
        return plots.write_plot(path, title, self.plot_panels(), "eval video")


def evaluate_video(
    model,
    data: str | Path | ClipData,
    *,
    clips: int | None = None,
    steps: int | None = None,
    seed: int = defaults.EVAL_SEED,
    dtype: str = defaults.DTYPE,
    device: str = defaults.DEVICE,
    progress: bool = True,
) -> VideoEval:
    """Score a video model (name / path / hub id / SVDModel; the bundled default when None) on the first `clips`
    clips (all by default) of a clip dataset (folder or ClipData), beside two baselines (module docstring)."""
    # 1. check inputs; read the dataset
    check_positive("clips", clips, "--clips")
    check_positive("steps", steps, "--steps")
    torch_dtype = resolve_dtype(dtype, resolve_device(device))
    where = "the clip dataset" if isinstance(data, ClipData) else f"clip dataset {data}"
    dataset = data if isinstance(data, ClipData) else ClipData.load(data)
    n_all, t, h, w = dataset.shape
    if t < 2:
        raise SVD3DError(f"{where} has clips of {t} frame; evaluation needs at least 2 frames per clip")
    if clips is not None and clips > n_all:
        raise SVD3DError(f"--clips {clips} but {where} holds {n_all} clip(s); pass at most {n_all}")
    count = clips or n_all

    # 2. the model, loaded once
    if not isinstance(model, SVDModel):
        model = load_model(model or default_model("video"), dtype=torch_dtype)
    if model.info.kind != "video":
        raise SVD3DError(
            f"model {model.source} is a {model.info.kind} model; svd3d eval video needs a video model "
            "(SVD / SVD-XT, tiny-video, or random-tiny-video for a smoke test)"
        )
    steps = steps or model.info.num_steps

    # 3. the mean-image baseline over every scored real frame
    mean_image = mean_scored_frame(dataset.frames, count)

    # 4. animate each clip's first frame; score the clip, the baselines, the start and the motion
    results = []
    for i in tqdm(range(count), desc="clips", unit="clip", disable=not progress):
        frames = np.asarray(dataset.frames[i])
        asked = float(np.clip(round(float(dataset.motion[i])), 0, 255))
        clip = generate_video(
            Image.fromarray(frames[0]),
            model=model,
            frames=t,
            steps=steps,
            fps=max(1, round(float(dataset.fps[i]))),
            motion_bucket=int(asked),
            seed=seed + i,
            size=(w, h),
            dtype=dtype,
            device=device,
            progress=False,
        )
        made = clip.frames  # (T, H, W, 3) float in [0, 1]
        real = frames.astype(np.float32) / 255.0
        predictions = {"model": made[1:], "repeat-input": real[0], "mean-image": mean_image}
        per_frame = {}  # method -> {"psnr": [T-1], "ssim": [T-1]}
        for method, pred in predictions.items():
            pred = np.broadcast_to(pred, real[1:].shape)
            per_frame[method] = {
                "psnr": [float(psnr(p, g)) for p, g in zip(pred, real[1:], strict=True)],
                "ssim": [float(ssim(p, g)) for p, g in zip(pred, real[1:], strict=True)],
            }
        results.append(
            ClipEval(
                name=dataset.names[i],
                psnr={m: float(np.mean(v["psnr"])) for m, v in per_frame.items()},
                ssim={m: float(np.mean(v["ssim"])) for m, v in per_frame.items()},
                start_psnr=float(psnr(made[0], real[0])),
                motion_asked=asked,
                motion_made=float(motion_bucket(clip.frames_uint8())),
                frames=per_frame,
            )
        )

    settings = {
        "clips": count,
        "frames": t,
        "size": f"{w}x{h}" if w != h else w,
        "steps": steps,
        "seed": seed,
        "dtype": str(torch_dtype).removeprefix("torch."),
        "device": str(resolve_device(device)),
    }
    label = "the given ClipData" if isinstance(data, ClipData) else str(data)
    return VideoEval(model.source, label, results, settings)
