"""How good are an orbit model's views? Generate every object of an orbit dataset from its input view at the
dataset's own cameras and score the generated views against the ground truth, beside two trivial baselines.

Protocol, stated once:

- Generation: frame 0 of each object is the conditioning image, used as it is (no re-centring, so the generated
  views keep the dataset's framing); the model generates the dataset's T views at the dataset's elevations and
  azimuths (SV3D_p style; an SV3D_u model only on static orbits) at the dataset's size. Object i uses seed + i.
- Scored views: 1..T-1. View 0 is excluded: the pipeline copies the input into it, so it would score perfectly.
- PSNR (dB, whole image in [0, 1]) and SSIM (skimage, RGB) from `svd3d.image_metrics`; LPIPS (AlexNet, inputs in
  [-1, 1]) only where the `lpips` package is installed and its backbone weights are already in torch's cache
  (never downloaded). Every number is a mean over views: first per object, then over objects (equal weights, as
  every object has T - 1 views). A perfect view has PSNR inf, so a mean with one is inf.
- Mask IoU: foreground of a generated (or baseline) view = pixels whose coverage by `mask_from_white` is at least
  `FOREGROUND` (some channel more than 1.5 x 0.04 = 0.06, about 15/255, below white: reconstruction's own masks,
  binarised). The ground truth's foreground is masks.npy >= 128 where the dataset has masks, else the same rule.
  Two empty masks agree perfectly (IoU 1).
- Baselines on the same views: `repeat-input` predicts the input view for every view (the model's view 0 copied);
  `mean-image` predicts the per-pixel mean of every scored ground-truth view of every evaluated object. That
  mean peeks at the test set: it is the best constant image there is for these views (it minimises their total
  squared error), so a training-split mean could only do worse and this is the harder floor to beat. Neither
  baseline looks at the camera; a model that does not beat both has learned nothing about the object's other
  sides.
- Margins: model minus the best baseline per metric (the higher baseline for PSNR, SSIM and IoU, the lower for
  LPIPS, where lower is better): positive is better, except for LPIPS where negative is.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
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
from svd3d.image import mask_from_white
from svd3d.image_metrics import mask_iou, psnr, ssim
from svd3d.models import SVDModel, load_model
from svd3d.models.registry import default_model
from svd3d.pipelines.common import check_positive
from svd3d.pipelines.orbit import generate_orbit
from svd3d.training.data import OrbitData

log = logging.getLogger(__name__)

PROTOCOL = __doc__  # written into every result
FOREGROUND = 0.5  # mask_from_white coverage from which a pixel is object (see the module docstring)
ALPHA_FOREGROUND = 128  # masks.npy alpha (0..255) from which a pixel is object
METHODS = ("model", "repeat-input", "mean-image")
BASELINES = ("repeat-input", "mean-image")
LPIPS_NOT_INSTALLED = "n/a (lpips not installed)"
LPIPS_NOT_CACHED = "n/a (lpips weights not cached)"

# (input view (S, S, 3) uint8, elevations (T,) and azimuths (T,) in degrees, seed) -> (T, S, S, 3) float views in
# [0, 1] in svd3d order (0 = the input view). `evaluate_orbit(generate=...)` scores such a function instead of a
# model: another method's outputs, or the ground truth itself to check the metrics (a perfect model).
Generate = Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]


# ---------------------------------------------------------------------------------------------------- data


def check_orbit_data(data: OrbitData, where: str) -> None:
    """What evaluation needs beyond a valid OrbitData (whose shapes and dtypes it checks itself): objects, views
    besides the input view, a size an orbit model can generate, svd3d's azimuth convention."""
    n, t, h, w = data.shape
    if n == 0:
        raise SVD3DError(f"{where} holds no objects")
    if t < 2:
        raise SVD3DError(f"{where} has {t} view per object; evaluation needs the input view and at least one more")
    if h != w:
        raise SVD3DError(f"{where} has {w}x{h} views; orbit models make square views, use a square dataset")
    if h % 8:
        fix = max(8, round(h / 8) * 8)
        raise SVD3DError(
            f"{where} has {h}x{w} views; an orbit model generates sizes that are multiples of 8 (the VAE works "
            f"in 8x8 blocks): build the dataset at e.g. {fix}x{fix}"
        )
    az = np.asarray(data.azimuths, np.float64)
    bad = np.flatnonzero((np.abs(az[:, 0]) > 1e-3) | np.any(np.diff(az, axis=1) <= 0, axis=1) | np.any(az >= 360, 1))
    if bad.size:
        i = int(bad[0])
        raise SVD3DError(
            f"{where}: sample {data.names[i]!r} has azimuths {np.round(az[i], 2).tolist()}; svd3d's convention is "
            "frame 0 at azimuth 0, then strictly increasing below 360"
        )


# ------------------------------------------------------------------------------------------------- metrics


def foreground(views: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) float in [0, 1] on white -> (..., H, W) bool: the pixels that are not background."""
    return mask_from_white(np.asarray(views)) >= FOREGROUND  # works on any leading shape


def lpips_scorer(device) -> tuple[Callable[[np.ndarray, np.ndarray], np.ndarray] | None, str]:
    """(score, "") with score((K, H, W, 3), (K, H, W, 3) in [0, 1]) -> (K,) LPIPS-Alex, or (None, why not).

    Only where `lpips` is installed and the AlexNet weights it builds on are already in torch's hub cache, so
    nothing is ever downloaded; lpips's own linear layers ship inside the package."""
    try:
        import lpips
        import torch
        from torchvision.models import AlexNet_Weights
    except ImportError:
        return None, LPIPS_NOT_INSTALLED
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(AlexNet_Weights.IMAGENET1K_V1.url).name
    if not cached.is_file():
        return None, LPIPS_NOT_CACHED
    net = lpips.LPIPS(net="alex", verbose=False).eval().to(device)

    def score(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        def tensor(x):  # (K, H, W, 3) [0, 1] -> (K, 3, H, W) [-1, 1]
            return torch.from_numpy(np.ascontiguousarray(x, np.float32)).permute(0, 3, 1, 2).to(device) * 2 - 1

        with torch.no_grad():
            return net(tensor(a), tensor(b)).flatten().cpu().numpy().astype(np.float64)

    return score, ""


@dataclass(frozen=True)
class Scores:
    psnr: float  # dB, mean over views
    ssim: float
    lpips: float | None  # None where LPIPS is unavailable (OrbitEval.lpips says why)
    mask_iou: float


def score_views(pred, gt, gt_masks, lpips_score) -> tuple[Scores, dict[str, list[float]]]:
    """pred (K, S, S, 3) or one (S, S, 3) view for all, gt (K, S, S, 3) float in [0, 1], gt_masks (K, S, S) bool
    -> (the means over the K views, each view's PSNR and mask IoU: {"psnr": [K], "mask_iou": [K]})."""
    pred = np.broadcast_to(pred, gt.shape)
    pred_masks = foreground(pred)
    views = {
        "psnr": [float(psnr(p, g)) for p, g in zip(pred, gt, strict=True)],
        "mask_iou": [float(mask_iou(p, g)) for p, g in zip(pred_masks, gt_masks, strict=True)],
    }
    means = Scores(
        psnr=float(np.mean(views["psnr"])),
        ssim=float(np.mean([ssim(p, g) for p, g in zip(pred, gt, strict=True)])),
        lpips=None if lpips_score is None else float(np.mean(lpips_score(pred, gt))),
        mask_iou=float(np.mean(views["mask_iou"])),
    )
    return means, views


def _mean(scores: list[Scores]) -> Scores:
    def avg(name):
        values = [getattr(s, name) for s in scores]
        return None if values[0] is None else float(np.mean(values))

    return Scores(avg("psnr"), avg("ssim"), avg("lpips"), avg("mask_iou"))


# ------------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ObjectEval:
    """One evaluated sample of the dataset (an object's orbit, named as in the dataset)."""

    name: str
    scores: dict[str, Scores]  # method (METHODS) -> its mean over this object's views 1..T-1
    azimuths: list[float] = field(default_factory=list)  # views 1..T-1, degrees
    views: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # method -> {"psnr", "mask_iou"} per view


@dataclass(frozen=True)
class OrbitEval:
    """What `evaluate_orbit` measured: means and per-object scores of the model and both baselines."""

    model: str  # what generated the views: the model's source, or the generate function's name
    data: str
    objects: list[ObjectEval]
    mean: dict[str, Scores]  # method -> mean over objects
    settings: dict  # views, size, steps, seed, device, dtype
    lpips: str  # "" where LPIPS was measured, else why not ("n/a (lpips not installed)")
    protocol: str = field(default=PROTOCOL, repr=False)

    def margins(self) -> Scores:
        """Model minus the best baseline, per metric (LPIPS: the lowest baseline; negative is better there)."""
        model, base = self.mean["model"], [self.mean[b] for b in BASELINES]

        def diff(value, best):
            if value is None:
                return None
            if math.isinf(value) and math.isinf(best) and (value > 0) == (best > 0):
                return 0.0  # both perfect
            return value - best

        return Scores(
            psnr=diff(model.psnr, max(s.psnr for s in base)),
            ssim=diff(model.ssim, max(s.ssim for s in base)),
            lpips=None if model.lpips is None else diff(model.lpips, min(s.lpips for s in base)),
            mask_iou=diff(model.mask_iou, max(s.mask_iou for s in base)),
        )

    def table(self) -> str:
        """Markdown: rows model, repeat-input, mean-image and the margin; columns PSNR, SSIM, LPIPS, mask IoU."""

        def row(label: str, s: Scores, signed: bool = False) -> str:
            sign = "+" if signed else ""
            lp = self.lpips or f"{s.lpips:{sign}.4f}"
            return f"| {label} | {s.psnr:{sign}.2f} | {s.ssim:{sign}.4f} | {lp} | {s.mask_iou:{sign}.4f} |"

        views = self.settings["views"] - 1
        lines = [
            f"orbit views of {len(self.objects)} object(s) x {views} view(s) at {self.settings['size']}px "
            f"(input view excluded), {self.model} on {self.data}",
            "",
            "| method | PSNR (dB) ↑ | SSIM ↑ | LPIPS ↓ | mask IoU ↑ |",
            "|---|---|---|---|---|",
            *(row(m, self.mean[m]) for m in METHODS),
            row("model − best baseline", self.margins(), signed=True),
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Every number (inf stays a float: Python's json writes it as Infinity)."""
        return {
            "model": self.model,
            "data": self.data,
            "settings": self.settings,
            "lpips": self.lpips or "measured",
            "mean": {m: asdict(s) for m, s in self.mean.items()},
            "margins": asdict(self.margins()),
            "objects": [
                {
                    "name": o.name,
                    **{m: asdict(s) for m, s in o.scores.items()},
                    "azimuths": o.azimuths,
                    "views": o.views,
                }
                for o in self.objects
            ],  # fmt: skip
            "protocol": self.protocol,
        }

    def plot_panels(self) -> list[plots.Panel]:
        """Each scored view's PSNR and mask IoU around the orbit: a line per method at each view's mean azimuth
        (the mean over objects), the model's single views as dots behind it."""
        azimuths = np.array([o.azimuths for o in self.objects], np.float64)  # (N, T-1)
        x = azimuths.mean(0)
        panels = []
        for metric, label in (("psnr", "PSNR (dB)"), ("mask_iou", "mask IoU")):
            lines, capped = [], False
            for method in METHODS:
                values = np.array([o.views[method][metric] for o in self.objects], np.float64)  # (N, T-1)
                if metric == "psnr":
                    values, was = plots.capped_psnr(values)
                    capped |= was
                points = (azimuths.ravel(), values.ravel()) if method == "model" else None
                lines.append(plots.Line(method, x, values.mean(0), points))
            note = f", inf drawn at {plots.PSNR_CEILING:g}" if capped else ""
            panels.append(plots.LinePanel(f"{label} by view{note}", "azimuth (degrees)", label, lines,
                                          xticks=list(range(0, 361, 45))))  # fmt: skip
        return panels

    def write_plot(self, path: str | Path) -> Path:
        """The plot_panels() as a PNG at `path` (svd3d.eval.plots: checked, written atomically)."""
        title = (f"{self.model} on {self.data}: {len(self.objects)} object(s), views 1..{self.settings['views'] - 1} "
                 f"at {self.settings['size']}px")  # fmt: skip
        return plots.write_plot(path, title, self.plot_panels(), "eval orbit")

    def write_json(self, path: str | Path) -> None:
        """Write to_dict() to path, atomically; an existing file there must be svd3d's own (svd3d.outputs)."""
        outputs.check_file_replaceable(Path(path))
        media.write_json(Path(path), {"written_by": "svd3d eval orbit", **self.to_dict()})


# ------------------------------------------------------------------------------------------------- evaluate


def model_generator(model, *, steps: int | None, dtype: str, device: str) -> Generate:
    """A Generate that runs `generate_orbit` with a loaded orbit model on the input view as it is."""
    has_camera = "azimuths_rad" in model.unet.vector_names

    def generate(view: np.ndarray, elevations: np.ndarray, azimuths: np.ndarray, seed: int) -> np.ndarray:
        t = len(azimuths)
        even = np.allclose(azimuths, np.arange(t) * 360.0 / t, atol=1e-3)
        static = even and np.allclose(elevations, elevations[0], atol=1e-3)
        if not static and not has_camera:
            raise SVD3DError(
                f"{model.info.name} takes no camera and makes only static orbits (one elevation, even azimuth "
                "steps); this dataset's cameras need an SV3D_p-type model"
            )
        # a static orbit is named as such, so camera-less models (SV3D_u) can make it; other orbits view by view
        if static:
            cameras = {"frames": t, "elevation": float(elevations[0])}
        else:
            cameras = {"elevations": elevations.tolist(), "azimuths": azimuths.tolist()}
        result = generate_orbit(
            Image.fromarray(view),
            model=model,
            steps=steps,
            seed=seed,
            size=view.shape[0],
            preprocess=False,
            dtype=dtype,
            device=device,
            progress=False,
            **cameras,
        )
        return result.frames

    return generate


def evaluate_orbit(
    model,
    data: str | Path | OrbitData,
    *,
    objects: int | None = None,
    steps: int | None = None,
    seed: int = defaults.EVAL_SEED,
    dtype: str = defaults.DTYPE,
    device: str = defaults.DEVICE,
    generate: Generate | None = None,
    progress: bool = True,
) -> OrbitEval:
    """Score an orbit model's views of the first `objects` samples (all by default) of an orbit dataset (a folder
    or OrbitData) against the ground truth, beside the repeat-input and mean-image baselines (module docstring).

    `model`: a name / path / hub id / SVDModel of an orbit model (the bundled default when None). `generate`
    replaces the model with a function of the `Generate` signature (then `model` must be None).
    """
    # 1. check inputs; read the dataset
    check_positive("objects", objects, "--objects")
    check_positive("steps", steps, "--steps")
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    if generate is not None and model is not None:
        raise SVD3DError("pass a model or a generate function, not both")
    where = "the orbit dataset" if isinstance(data, OrbitData) else f"orbit dataset {data}"
    views = data if isinstance(data, OrbitData) else OrbitData.load(data)
    check_orbit_data(views, where)
    n_all, t, side = views.frames.shape[0], views.frames.shape[1], views.frames.shape[2]
    if objects is not None and objects > n_all:
        raise SVD3DError(f"--objects {objects} but {where} holds {n_all} object(s); pass at most {n_all}")
    count = objects or n_all

    # 2. the model: loaded once, checked to be an orbit model
    if generate is None:
        generate, label, steps = _load_generator(model, steps, dtype, device)
    else:
        label = getattr(generate, "__name__", "generate function")
    log.info("eval orbit: %s on %d object(s) x %d views at %dpx", label, count, t, side)

    # 3. the mean-image baseline: the per-pixel mean of every scored ground-truth view (float64 running sum)
    mean_image = mean_scored_frame(views.frames, count)  # (S, S, 3)

    # 4. generate each object's views at the dataset's cameras, score them and the baselines on views 1..T-1
    lpips_score, lpips_note = lpips_scorer(dev)
    results = []
    for i in tqdm(range(count), desc="objects", unit="object", disable=not progress):
        frames = np.asarray(views.frames[i])  # (T, S, S, 3) uint8
        elev, azim = np.asarray(views.elevations[i], np.float64), np.asarray(views.azimuths[i], np.float64)
        pred = np.asarray(generate(frames[0], elev, azim, seed + i), np.float32)
        if pred.shape != (t, side, side, 3):
            raise SVD3DError(
                f"the generator made views of shape {pred.shape} for object {views.names[i]!r}, "
                f"expected {(t, side, side, 3)}"
            )
        gt = frames[1:].astype(np.float32) / 255.0  # (T-1, S, S, 3)
        gt_masks = np.asarray(views.masks[i, 1:]) >= ALPHA_FOREGROUND if views.masks is not None else foreground(gt)
        predictions = {
            "model": pred[1:],
            "repeat-input": frames[0].astype(np.float32) / 255.0,
            "mean-image": mean_image,
        }
        scored = {m: score_views(p, gt, gt_masks, lpips_score) for m, p in predictions.items()}
        scores, per_view = {m: v[0] for m, v in scored.items()}, {m: v[1] for m, v in scored.items()}
        results.append(ObjectEval(views.names[i], scores, azim[1:].tolist(), per_view))

    # 5. means over objects
    mean = {m: _mean([o.scores[m] for o in results]) for m in METHODS}
    gt_mask_source = "masks.npy" if views.masks is not None else "white background"
    settings = {
        "objects": count,
        "views": t,
        "size": side,
        "steps": steps,
        "seed": seed,
        "dtype": str(torch_dtype).removeprefix("torch."),
        "device": str(dev),
        "foreground": FOREGROUND,
        "gt_masks": gt_mask_source,
    }
    data_label = "the given OrbitData" if isinstance(data, OrbitData) else str(data)
    return OrbitEval(label, data_label, results, mean, settings, lpips_note)


def load_orbit_model(model, dtype: str, device: str, command: str = "svd3d eval orbit"):
    """An orbit model given by name (the bundled default for None) or loaded, checked to be an orbit model."""
    if not isinstance(model, SVDModel):
        torch_dtype = resolve_dtype(dtype, resolve_device(device))
        model = load_model(model or default_model("orbit"), dtype=torch_dtype)
    if model.info.kind != "orbit":
        raise SVD3DError(
            f"model {model.source} is a {model.info.kind} model; {command} needs an orbit model "
            "(SV3D_p / SV3D_u, tiny-orbit, or random-tiny-orbit for a smoke test)"
        )
    return model


def _load_generator(model, steps, dtype: str, device: str) -> tuple[Generate, str, int]:
    """(generate, the model's label, the steps it samples with) for an orbit model given by name or loaded."""
    model = load_orbit_model(model, dtype, device)
    steps = steps or model.info.num_steps
    return model_generator(model, steps=steps, dtype=dtype, device=device), model.source, steps
