"""Evaluation families for `svd3d eval orbit --family`: orbit datasets whose input views reach the model as a user's
picture does (rendered by another camera, off centre, on a plain background, then segmented and framed by
`svd3d orbit`'s own preprocessing), from objects the training saw in kind, never in kind, or never at all.

Protocol, stated once:

- Families. "procedural": the bundled generator's own objects (svd3d.training.procedural.random_object with the
  defaults, tiny-orbit's world), matte, lit by the renderer's headlight; in kind what tiny-orbit trained on, the
  objects themselves unseen (seed 777 by default: no bundled training run drew it). "held-out": objects no training
  run makes, by construction (svd3d.training.procedural.held_out_object: at least one part a star prism or a
  trefoil knot, every colour a pastel), matte, lit by a camera-fixed light from the right
  (svd3d.training.meshes.HELD_OUT_LIGHT_AZIMUTH / _ELEVATION, intensity and ambient drawn as varied training
  lights are), which no training light comes from. "meshes": the mesh files of a folder (e.g. the bench meshes)
  with their own colours and textures, loaded by load_mesh(fit_to="sphere"), the renderer's headlight; sample j
  is mesh j mod M, so asking for more samples than meshes draws each again at other cameras.
- Cameras, per object from its own generator (seed, j): a start azimuth, then one static and one dynamic orbit
  (as the training datasets: svd3d.training.meshes.render_object_orbits), base elevation uniform in
  DEFAULT_ELEVATION_RANGE, at the model's view count and size.
- The input (frame 0 of each sample): the object seen from the orbit's input camera direction by another camera,
  field of view uniform in PHOTO_FOV, its bounding sphere filling a fraction in PHOTO_FILL of a PHOTO_SIDE-times
  larger square, shifted off centre by up to PHOTO_SHIFT of the free margin, composited on a plain light
  background (PHOTO_BACKGROUND, no alpha), with the orbit's light; then `svd3d.segment.prepare_object` at the
  model's size and svd3d orbit's default object fraction (svd3d.defaults.OBJECT_FRACTION) with the plain-background
  segmentation (method "background", so no locally cached rembg model changes the result): the conditioning image
  `svd3d orbit PHOTO` would hand the model.
- Ground truth (frames 1..T-1): the mesh framed as that preprocessing frames its input view
  (svd3d.training.meshes.frame_input_view at the same object fraction: the silhouette centred, its larger side
  that fraction of the frame), rendered at the orbit's cameras with the same light (supersample 3). masks.npy
  holds their coverage; frame 0's mask is the preprocessing's own.
- The manifest's source records, per sample, how closely the preprocessed input matches the framed ground truth's
  input view (mask IoU, `input_iou`): what the preprocessing itself costs, which no model can win back.
- Scoring: `svd3d.eval.orbit.evaluate_orbit` on that dataset (views 1..T-1 against the ground truth, beside
  repeat-input and mean-image).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from svd3d import defaults, media, outputs, signals
from svd3d.cameras import Intrinsics, orbit_c2w
from svd3d.errors import SVD3DError
from svd3d.eval import plots
from svd3d.eval.orbit import (
    ALPHA_FOREGROUND,
    BASELINES,
    METHODS,
    OrbitEval,
    evaluate_orbit,
    foreground,
    load_orbit_model,
)
from svd3d.geometry import load_mesh
from svd3d.image_metrics import mask_iou
from svd3d.pipelines.common import check_positive
from svd3d.render import render_cameras, render_views
from svd3d.segment import prepare_object
from svd3d.training.data import DEFAULT_ORBITS, OrbitData, RenderOrbitSettings
from svd3d.training.meshes import (
    HELD_OUT_LIGHT_AZIMUTH,
    HELD_OUT_LIGHT_ELEVATION,
    Lighting,
    draw_lighting,
    find_meshes,
    frame_input_view,
    object_rng,
    render_object_orbits,
)
from svd3d.training.procedural import held_out_object, random_object

log = logging.getLogger(__name__)

PROTOCOL = __doc__
Family = Literal["procedural", "held-out", "meshes"]
FAMILIES: tuple[str, ...] = ("procedural", "held-out", "meshes")
FAMILY_SEED = defaults.EVAL_FAMILY_SEED  # no bundled training run drew it (tiny-orbit: 1, tiny-orbit-variety: 2)
DEFAULT_FAMILY_OBJECTS = 32  # samples of a generated family when none are asked for (16 objects x 2 orbits)
PHOTO_SIDE = 3  # the picture is this many times the model's size (on a side)
PHOTO_FOV = (20.0, 45.0)  # degrees: other lenses than the model's 33.8
PHOTO_FILL = (0.35, 0.65)  # of the picture's side, by the object's bounding sphere
PHOTO_SHIFT = 0.8  # of the margin the fill leaves, at most, in each direction
PHOTO_BACKGROUND = (200, 245)  # each channel of the plain background, sRGB


@dataclass(frozen=True)
class FamilyEval:
    """What `evaluate_families` measured: one OrbitEval per set, in the order asked."""

    sets: dict[str, OrbitEval]  # set name ("procedural", "held-out", "meshes", or a dataset folder) -> its evaluation
    input_iou: dict[str, float | None]  # set -> mean mask IoU of the preprocessed input vs the framed ground truth
    iou_ceiling: dict[str, float]  # set -> the mask IoU the ground-truth views themselves score (`mask_ceiling`)

    def table(self) -> str:
        """Every set's own table, then one row per set side by side: the model, the best baseline, the margin."""
        parts = []
        for name, result in self.sets.items():
            parts += [f"## {name}", "", result.table(), ""]
        head = ("| set | samples | input IoU | PSNR model | PSNR best baseline | PSNR margin | SSIM margin | "
                "mask IoU model | mask IoU best baseline | mask IoU margin | mask IoU of the truth |")  # fmt: skip
        parts += ["side by side (best baseline: the better of repeat-input and mean-image, per metric; input IoU: "
                  "the preprocessed input against the framed truth; mask IoU of the truth: what perfect views "
                  "would score):", "", head, "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, result in self.sets.items():
            m, margin = result.mean["model"], result.margins()
            best_psnr = max(result.mean[b].psnr for b in BASELINES)
            best_iou = max(result.mean[b].mask_iou for b in BASELINES)
            iou = self.input_iou.get(name)
            parts.append(
                f"| {name} | {len(result.objects)} | {'n/a' if iou is None else f'{iou:.3f}'} | {m.psnr:.2f} | "
                f"{best_psnr:.2f} | {margin.psnr:+.2f} | {margin.ssim:+.4f} | {m.mask_iou:.4f} | {best_iou:.4f} | "
                f"{margin.mask_iou:+.4f} | {self.iou_ceiling[name]:.4f} |"
            )
        return "\n".join(parts)

    def to_dict(self) -> dict:
        return {
            "sets": {name: r.to_dict() for name, r in self.sets.items()},
            "input_iou": self.input_iou,
            "iou_ceiling": self.iou_ceiling,
            "family_protocol": PROTOCOL,
        }

    def plot_panels(self) -> list[plots.Panel]:
        """PSNR and mask IoU of the model and both baselines, one group of bars per set."""
        groups = list(self.sets)
        panels = []
        for metric, label in (("psnr", "PSNR (dB)"), ("mask_iou", "mask IoU")):
            bars = {m: [float(getattr(r.mean[m], metric)) for r in self.sets.values()] for m in METHODS}
            panels.append(plots.BarPanel(f"{label}, mean over views 1..T-1", label, groups, bars))
        return panels

    def write_plot(self, path: str | Path) -> Path:
        """The plot_panels() as a PNG at `path` (svd3d.eval.plots: checked, written atomically)."""
        model = next(iter(self.sets.values())).model
        title = f"{model}: novel views per evaluation set, beside repeat-input and mean-image"
        return plots.write_plot(path, title, self.plot_panels(), "eval orbit")

    def write_json(self, path: str | Path) -> None:
        outputs.check_file_replaceable(Path(path))
        media.write_json(Path(path), {"written_by": "svd3d eval orbit", **self.to_dict()})


# ------------------------------------------------------------------------------------------------ pictures


def photo_of(mesh, elevation: float, lighting: Lighting, side: int, rng: np.random.Generator) -> Image.Image:
    """An RGB picture of the (normalised, turned) mesh from the camera direction (elevation, azimuth 0), as another
    camera takes it (PHOTO_FOV, PHOTO_FILL, PHOTO_SHIFT), on a plain PHOTO_BACKGROUND colour, no alpha."""
    fov = rng.uniform(*PHOTO_FOV)
    fill = rng.uniform(*PHOTO_FILL)
    reach = float(np.linalg.norm(mesh.vertices, axis=1).max())
    half_angle = math.atan(fill * math.tan(math.radians(fov) / 2))
    distance = reach / math.sin(half_angle)
    intrinsics = Intrinsics.from_fov(side, side, fov)
    margin = (1.0 - fill) * side / 2
    shift = rng.uniform(-PHOTO_SHIFT, PHOTO_SHIFT, 2) * margin
    intrinsics = replace(intrinsics, cx=side / 2 + shift[0], cy=side / 2 + shift[1])
    background = rng.integers(PHOTO_BACKGROUND[0], PHOTO_BACKGROUND[1] + 1, 3).astype(np.float32)
    c2w = orbit_c2w([elevation], [0.0], distance)
    rgba = render_cameras(mesh, c2w, intrinsics, light=lighting.light, ambient=lighting.ambient,
                          intensity=lighting.intensity).rgba[0]  # fmt: skip
    alpha = rgba[..., 3:].astype(np.float32) / 255.0
    colour = rgba[..., :3].astype(np.float32) - (1.0 - alpha) * 255.0  # premultiplied: RGB on white minus the white
    photo = colour + (1.0 - alpha) * background
    return Image.fromarray(np.clip(np.round(photo), 0, 255).astype(np.uint8), "RGB")


# ------------------------------------------------------------------------------------------------ datasets


def _family_object(family: str, j: int, seed: int, paths: list[Path]):
    """(name, normalised mesh, rng for its cameras and pictures, lighting of its orbits or None for the headlight)."""
    rng = object_rng(seed, j)
    if family == "procedural":
        return f"proc-{j:06d}", random_object(rng), rng, None
    if family == "held-out":
        return f"held-{j:06d}", held_out_object(rng), rng, (HELD_OUT_LIGHT_AZIMUTH, HELD_OUT_LIGHT_ELEVATION)
    path = paths[j % len(paths)]
    name = path.stem.replace("#", "_") + (f"@{j // len(paths)}" if j >= len(paths) else "")
    return name, load_mesh(path, fit_to="sphere"), rng, None


@dataclass(frozen=True)
class FamilySample:
    """One orbit of a family object: the picture a user would give, what svd3d orbit's preprocessing makes of it,
    and the ground truth framed the same way."""

    name: str  # "held-000003#dynamic"
    picture: Image.Image  # RGB, PHOTO_SIDE x the model's size, on a plain background
    prepared: object  # svd3d.segment.PreparedObject: the conditioning image and its mask
    truth: np.ndarray  # (T, S, S, 4) uint8 RGBA renders of the framed mesh at the orbit's cameras
    elevations: np.ndarray  # (T,) degrees
    azimuths: np.ndarray  # (T,) degrees, 0 first
    record: dict  # input_iou, scale, light
    mesh: object  # trimesh.Trimesh: the framed mesh the truth shows, in the orbit's frame (frame 0 at azimuth 0)


def _check_family(family: str, meshes) -> list[Path]:
    """The mesh files of the "meshes" family ([] for the others), or an SVD3DError naming the bad request."""
    if family not in FAMILIES:
        raise SVD3DError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    if family == "meshes":
        if meshes is None:
            raise SVD3DError("--family meshes needs --meshes DIR (a folder of mesh files, e.g. the bench meshes)")
        return find_meshes(meshes)
    if meshes is not None:
        raise SVD3DError(f"--meshes is for --family meshes; the {family} family makes its own objects")
    return []


def family_samples(
    family: Family,
    objects: int,
    *,
    meshes: str | Path | None = None,
    size: int = defaults.DATA_SIZE,
    views: int = 21,
    seed: int = FAMILY_SEED,
):
    """Yield the FamilySample of each orbit (static, then dynamic) of `objects` objects of `family`, in order."""
    paths = _check_family(family, meshes)
    settings = RenderOrbitSettings(size=size, frames=views).check()
    for j in range(objects):
        name, mesh, rng, light_range = _family_object(family, j, seed, paths)
        # the cameras only (no pixels): the start azimuth and the orbits' elevations, exactly as a dataset draws them
        cameras = render_object_orbits(mesh, rng, replace(settings, size=8, supersample=1))
        turned = _turned(mesh, cameras["start_azimuth"])
        for k, kind in enumerate(DEFAULT_ORBITS):
            elev, azim = cameras["elevations"][k].astype(np.float64), cameras["azimuths"][k].astype(np.float64)
            lighting = draw_lighting(rng, *light_range) if light_range else Lighting()
            picture = photo_of(turned, float(elev[0]), lighting, PHOTO_SIDE * size, rng)
            prepared = prepare_object(picture, size, defaults.OBJECT_FRACTION, method="background", name=name)
            framed, scale = frame_input_view(turned, float(elev[0]), defaults.OBJECT_FRACTION)
            truth = render_views(framed, elev, azim, size, light=lighting.light, ambient=lighting.ambient,
                                 intensity=lighting.intensity, supersample=settings.supersample).rgba  # fmt: skip
            iou = mask_iou(prepared.mask >= 0.5, truth[0, ..., 3] >= 128)
            record = {"name": f"{name}#{kind}", "input_iou": round(float(iou), 4), "scale": round(scale, 4),
                      "light": lighting.record()}  # fmt: skip
            yield FamilySample(f"{name}#{kind}", picture, prepared, truth, elev, azim, record, framed)


def family_dataset(
    family: Family,
    samples: int | None = None,
    *,
    meshes: str | Path | None = None,
    size: int = defaults.DATA_SIZE,
    views: int = 21,
    seed: int = FAMILY_SEED,
    progress: bool = True,
) -> OrbitData:
    """The evaluation set of `family` (module docstring) as an OrbitData of `samples` samples (each object gives
    one static and one dynamic orbit; default DEFAULT_FAMILY_OBJECTS, for "meshes" one object per mesh file) at
    `size` px with `views` views: frame 0 the preprocessed input, frames 1.. the framed ground truth."""
    # 1. check inputs
    paths = _check_family(family, meshes)
    check_positive("samples", samples, "--objects")
    orbits = len(DEFAULT_ORBITS)
    samples = samples or (orbits * len(paths) if paths else DEFAULT_FAMILY_OBJECTS)
    settings = RenderOrbitSettings(size=size, frames=views).check()

    # 2. each sample: the preprocessed input as frame 0, the framed truth after it
    frames = np.empty((samples, views, size, size, 3), np.uint8)
    masks = np.empty((samples, views, size, size), np.uint8)
    elevations = np.empty((samples, views), np.float32)
    azimuths = np.empty((samples, views), np.float32)
    names, records = [], []
    made = family_samples(family, math.ceil(samples / orbits), meshes=meshes, size=size, views=views, seed=seed)
    for i, sample in zip(tqdm(range(samples), desc=f"{family} samples", disable=not progress), made, strict=False):
        frames[i, 0] = np.asarray(sample.prepared.image)
        masks[i, 0] = np.round(sample.prepared.mask * 255).astype(np.uint8)
        frames[i, 1:], masks[i, 1:] = sample.truth[1:, ..., :3], sample.truth[1:, ..., 3]
        elevations[i], azimuths[i] = sample.elevations, sample.azimuths
        names.append(sample.name)
        records.append(sample.record)

    # 3. the dataset, its source saying how it was made
    source = {
        "generator": "svd3d.eval.family",
        "family": family,
        "seed": int(seed),
        "meshes": str(meshes) if meshes is not None else None,
        "settings": settings.record(),
        "object_fraction": defaults.OBJECT_FRACTION,
        "samples": records,
    }
    return OrbitData(frames, elevations, azimuths, names, masks, source)


def mask_ceiling(data: OrbitData, samples: int | None = None) -> float:
    """The mask IoU perfect views would score on the first `samples` samples: the foreground the evaluation finds
    in the ground-truth views 1..T-1 (colour away from white) against their masks (coverage), the same mean over
    views then samples as svd3d.eval.orbit. Below 1 where edges are soft or colours pale."""
    n = samples or len(data)
    scores = []
    for i in range(n):
        truth = foreground(np.asarray(data.frames[i, 1:], np.float32) / 255.0)  # (T-1, S, S)
        masks = np.asarray(data.masks[i, 1:]) >= ALPHA_FOREGROUND if data.masks is not None else truth
        scores.append(np.mean([mask_iou(a, b) for a, b in zip(truth, masks, strict=True)]))
    return float(np.mean(scores))


def _turned(mesh, start: float):
    """The mesh turned as render_object_orbits turns it, so the view from `start` becomes azimuth 0."""
    trimesh = signals.import_whole("trimesh")

    turned = mesh.copy()
    turned.apply_transform(trimesh.transformations.rotation_matrix(math.radians(-start), [0.0, 1.0, 0.0]))
    return turned


# ------------------------------------------------------------------------------------------------ evaluate


def evaluate_families(
    model=None,
    families: list[str] | tuple[str, ...] = (),
    *,
    data: str | Path | None = None,
    meshes: str | Path | None = None,
    objects: int | None = None,
    steps: int | None = None,
    seed: int = defaults.EVAL_SEED,
    family_seed: int = FAMILY_SEED,
    dtype: str = defaults.DTYPE,
    device: str = defaults.DEVICE,
    progress: bool = True,
) -> FamilyEval:
    """Score an orbit model (name / path / SVDModel; the bundled default when None) on each of `families` (made at
    the model's size and view count, `objects` samples each, or each family's default) and on the dataset folder
    `data` if given (its first `objects` samples), side by side. `meshes` names the folder of the "meshes" family
    (given alone, it asks for that family)."""
    # 1. check inputs: the sets, before any model is loaded or anything is rendered
    families = list(dict.fromkeys(families))
    if meshes is not None and "meshes" not in families:
        families.append("meshes")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise SVD3DError(f"unknown family {unknown[0]!r}; choose from {', '.join(FAMILIES)}")
    if not families and data is None:
        raise SVD3DError("give --data DATASET and / or --family (procedural, held-out, meshes) to evaluate on")
    if "meshes" in families:
        if meshes is None:
            raise SVD3DError("--family meshes needs --meshes DIR (a folder of mesh files, e.g. the bench meshes)")
        find_meshes(meshes)
    check_positive("objects", objects, "--objects")
    check_positive("steps", steps, "--steps")

    # 2. the model, once
    loaded = load_orbit_model(model, dtype, device)
    size, views = loaded.info.width, loaded.info.num_frames
    common = {"objects": None, "steps": steps, "seed": seed, "dtype": dtype, "device": device, "progress": progress}

    # 3. each set: made (families) or read (a dataset), then evaluated
    sets, input_iou, ceiling = {}, {}, {}
    if data is not None:
        sets[str(data)] = evaluate_orbit(loaded, data, **{**common, "objects": objects})
        input_iou[str(data)] = None
        ceiling[str(data)] = mask_ceiling(OrbitData.load(data), len(sets[str(data)].objects))
    for family in families:
        log.info("eval orbit: making the %s family at %d px x %d views (seed %d)", family, size, views, family_seed)
        dataset = family_dataset(family, objects, meshes=meshes if family == "meshes" else None, size=size,
                                 views=views, seed=family_seed, progress=progress)  # fmt: skip
        result = evaluate_orbit(loaded, dataset, **common)
        label = f"{family} ({meshes})" if family == "meshes" else family
        sets[label] = replace(result, data=f"family {family}, seed {family_seed}")
        input_iou[label] = float(np.mean([s["input_iou"] for s in dataset.source["samples"]]))
        ceiling[label] = mask_ceiling(dataset)
    return FamilyEval(sets, input_iou, ceiling)
